"""The Lua scripts of change sets: each runs atomically in Redis, so a promote is all or
nothing however ingest dies, and a live write never slips between a promote's checks and its
writes. The shadow list of a rule (``a|b``: the open sets that stage it) is the live document's
``shadow`` TAG field; candidate searches of set ``a`` leave out live documents shadowed by ``a``.
"""

from __future__ import annotations

_NAMES = """
local function add_name(list, name)
  for part in string.gmatch(list, '[^|]+') do
    if part == name then return list end
  end
  if list == '' then return name end
  return list .. '|' .. name
end
local function drop_name(list, name)
  local kept = {}
  for part in string.gmatch(list, '[^|]+') do
    if part ~= name then kept[#kept + 1] = part end
  end
  return table.concat(kept, '|')
end
-- Record the rule's new shadow list (none: no entry).
local function store_shadow(shadow_key, rule_id, list)
  if list == '' then
    redis.call('HDEL', shadow_key, rule_id)
  else
    redis.call('HSET', shadow_key, rule_id, list)
  end
end
-- ... and put it on the rule's live document when there is one.
local function set_shadow(shadow_key, rule_id, live_doc, list)
  store_shadow(shadow_key, rule_id, list)
  if redis.call('EXISTS', live_doc) == 1 then
    redis.call('HSET', live_doc, 'shadow', list)
  end
end
"""

# KEYS: record, members, changes, names, shadow, ledger, live doc, candidate doc.
# ARGV: name, rule_id, version, op ("u"/"d"), change JSON, now, max members, then the
# candidate document's field/value pairs (upserts).
# Returns 1 staged, 0 stale (the set or the live memory has this version or a newer one),
# -1 refused (the set is promoted or discarded), -2 refused (the set is full).
STAGE = (
    _NAMES
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state and state ~= 'open' then return -1 end
local version = tonumber(ARGV[3])
local staged = math.abs(tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0'))
if version <= staged then return 0 end
local live = math.abs(tonumber(redis.call('HGET', KEYS[6], ARGV[2]) or '0'))
if version <= live then return 0 end
if staged == 0 and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[7]) then return -2 end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'open', 'created_at', ARGV[6], 'revision', 0)
  redis.call('SADD', KEYS[4], ARGV[1])
end
local signed = version
if ARGV[4] == 'd' then signed = -version end
redis.call('HSET', KEYS[2], ARGV[2], signed)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
redis.call('HINCRBY', KEYS[1], 'revision', 1)
redis.call('HSET', KEYS[1], 'updated_at', ARGV[6])
local shadow = redis.call('HGET', KEYS[5], ARGV[2]) or ''
local added = add_name(shadow, ARGV[1])
if added ~= shadow then set_shadow(KEYS[5], ARGV[2], KEYS[7], added) end
if ARGV[4] == 'u' then
  redis.call('HSET', KEYS[8], unpack(ARGV, 8))
else
  redis.call('DEL', KEYS[8])
end
return 1
"""
)

# KEYS: record, members, ledger, settling. ARGV: name, revision, now, then every member's rule id.
# The switch itself: the ledger takes the staged versions and the set joins the tenant's
# settling sets, which every search reads first (``shared/memory/settling.py``): a settling
# set's staged documents are live, the documents it shadows are not. No document is written,
# so the cost does not grow with the index (the documents move into place afterwards: SETTLE).
# Returns {1} promoted, {2} promoted already (a redelivered promote), {-1} refused (discarded
# or unknown), {-3} refused (the set changed: another revision or other members), {-4, ids...}
# refused (these rules' live versions are at or above the staged ones), {-5} another set of the
# tenant is still settling (settle it, then promote again).
PROMOTE = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'promoted' then return {2} end
if state ~= 'open' then return {-1} end
if redis.call('HGET', KEYS[1], 'revision') ~= ARGV[2] then return {-3} end
local count = #ARGV - 3
if redis.call('HLEN', KEYS[2]) ~= count then return {-3} end
if redis.call('HLEN', KEYS[4]) > 0 then return {-5} end
local versions, conflicts = {}, {-4}
for i = 1, count do
  local rule_id = ARGV[3 + i]
  local version = tonumber(redis.call('HGET', KEYS[2], rule_id) or '0')
  if version == 0 then return {-3} end
  local live = math.abs(tonumber(redis.call('HGET', KEYS[3], rule_id) or '0'))
  if math.abs(version) <= live and #conflicts <= 100 then conflicts[#conflicts + 1] = rule_id end
  versions[i] = version
end
if #conflicts > 1 then return conflicts end
for i = 1, count do
  redis.call('HSET', KEYS[3], ARGV[3 + i], versions[i])
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[1], 'state', 'promoted', 'closed_at', ARGV[3])
return {1}
"""

# KEYS: members, shadow, ledger, then (live doc, candidate doc) per rule. ARGV: name, then the
# rule ids. Moves a settling set's staged documents into place, each rule atomically: a search
# sees either the staged document (the set settling) or the live one it became, never both or
# neither. A rule whose ledger moved on (a live edit after the promote) only loses its staged
# document (the writer deleted it already). Returns how many documents moved.
SETTLE = (
    _NAMES
    + """
local moved = 0
for i = 2, #ARGV do
  local rule_id = ARGV[i]
  local live_doc, candidate = KEYS[2 * i], KEYS[2 * i + 1]
  local version = tonumber(redis.call('HGET', KEYS[1], rule_id) or '0')
  local current = tonumber(redis.call('HGET', KEYS[3], rule_id) or '0')
  local shadow = drop_name(redis.call('HGET', KEYS[2], rule_id) or '', ARGV[1])
  store_shadow(KEYS[2], rule_id, shadow) -- the live document gets it with its other fields
  if version ~= current then
    redis.call('DEL', candidate)
  elseif version < 0 then
    moved = moved + redis.call('DEL', live_doc)
  elseif redis.call('EXISTS', candidate) == 1 then
    local fields = redis.call('HGETALL', candidate)
    local out, status = {}, 'active'
    for j = 1, #fields, 2 do
      local field = fields[j]
      if field == 'staged_status' then status = fields[j + 1]
      elseif field ~= 'status' and field ~= 'stage' and field ~= 'shadow' then
        out[#out + 1] = field
        out[#out + 1] = fields[j + 1]
      end
    end
    out[#out + 1] = 'status'
    out[#out + 1] = status
    out[#out + 1] = 'shadow'
    out[#out + 1] = shadow
    redis.call('HSET', live_doc, unpack(out)) -- every field of a rule: none of the old stays
    redis.call('DEL', candidate)
    moved = moved + 1
  end
end
return moved
"""
)

# KEYS: record, members, changes, shadow, then (live doc, candidate doc) per member.
# ARGV: name, now, then the members' rule ids. Returns 1 discarded, 2 discarded already,
# 0 unknown set, -1 refused (promoted), -3 refused (the members changed: read them again).
DISCARD = (
    _NAMES
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'discarded' then return 2 end
if state == 'promoted' then return -1 end
if not state then return 0 end
local count = #ARGV - 2
if redis.call('HLEN', KEYS[2]) ~= count then return -3 end
for i = 1, count do
  local rule_id = ARGV[2 + i]
  if redis.call('HEXISTS', KEYS[2], rule_id) == 0 then return -3 end
end
for i = 1, count do
  local rule_id = ARGV[2 + i]
  local shadow = redis.call('HGET', KEYS[4], rule_id) or ''
  set_shadow(KEYS[4], rule_id, KEYS[3 + 2 * i], drop_name(shadow, ARGV[1]))
  redis.call('DEL', KEYS[4 + 2 * i])
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[1], 'state', 'discarded', 'closed_at', ARGV[2])
return 1
"""
)

# KEYS: record. ARGV: revision, evidence JSON. 1 kept; 0 the set is at another revision.
EVIDENCE = """
if redis.call('HGET', KEYS[1], 'revision') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'evidence', ARGV[2])
return 1
"""
