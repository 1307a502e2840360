"""The write side of the rule memory: idempotent by (tenant, rule_id, version).

``plan`` is the pure part: given a batch of events and the versions already applied, decide what
to write. ``RuleWriter`` then applies the plan with one Lua script per rule, which checks the
version again atomically (a concurrent rebuild or a second replica cannot reorder writes).

The version ledger (``{prefix}:ruleversions:{tenant}``) keeps each rule's applied version, as a
negative number when that version was a delete. ``memory rebuild --drop`` drops the documents but
keeps the ledger and replays in *restore* mode: an event is written only if its version is the
ledger's and its operation the ledger's, so a compacted-in or replayed older record never comes
back, nor a deleted rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.events import IndexOutcome, RuleEvent, RuleUpsert
from shared.memory.index import RuleIndexes
from shared.memory.replication import replicated
from shared.memory.schema import rule_fields
from shared.redis import preload_scripts


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class Plan:
    writes: dict[tuple[str, str], RuleEvent]
    """The newest event of each rule that is newer than what Redis has."""
    outcomes: list[IndexOutcome]
    """Expected outcome of each event of the batch, in order (STALE for superseded ones)."""

    @property
    def upserts(self) -> list[RuleUpsert]:
        return [e for e in self.writes.values() if isinstance(e, RuleUpsert)]


def plan(
    events: Sequence[RuleEvent], applied: Mapping[tuple[str, str], int], *, restore: bool = False
) -> Plan:
    """Choose the writes for a batch: per rule only the highest version above the applied one
    (``restore``: also the applied version itself, to write its document again).

    Only those are embedded, so replays and superseded versions cost no embedding.
    """
    newest: dict[tuple[str, str], int] = {}
    for event in events:
        tenant, rule_id, version = event.target
        key = (tenant, rule_id)
        newest[key] = max(version, newest.get(key, 0))
    writes: dict[tuple[str, str], RuleEvent] = {}
    outcomes: list[IndexOutcome] = []
    for event in events:
        tenant, rule_id, version = event.target
        key = (tenant, rule_id)
        current = applied.get(key, 0)
        newer = version >= current if restore else version > current
        wins = version == newest[key] and newer and key not in writes
        if wins:
            writes[key] = event
        outcomes.append(IndexOutcome.APPLIED if wins else IndexOutcome.STALE)
    return Plan(writes, outcomes)


# KEYS: doc key, versions hash, shadow hash, settling hash. ARGV: rule_id, version, op ("u"/"d"),
# mode ("w" write or "r" restore), the tenant's staged-document key prefix, then field/value
# pairs. The ledger holds -version after a delete. The document's ``shadow`` (the open change
# sets that stage this rule) comes from the shadow hash, so a new live version stays hidden from
# the candidate searches of those sets. A set that is settling (promoted, its documents not all
# in place yet) loses its staged version of this rule: the new version supersedes it.
_APPLY = """
local raw = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local current = math.abs(raw)
local version = tonumber(ARGV[2])
if version < current then return 0 end
if version == current then
  if ARGV[4] ~= 'r' then return 0 end
  local applied_op = 'u'
  if raw < 0 then applied_op = 'd' end -- no mutate (raw is 0 only for a version 0)
  if applied_op ~= ARGV[3] then return 0 end
  if ARGV[3] == 'd' or redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
end
local shadow = redis.call('HGET', KEYS[3], ARGV[1]) or ''
if shadow ~= '' and redis.call('HLEN', KEYS[4]) > 0 then
  local kept = {}
  for name in string.gmatch(shadow, '[^|]+') do
    if redis.call('HEXISTS', KEYS[4], name) == 1 then
      redis.call('DEL', ARGV[5] .. name .. '/' .. ARGV[1])
    else
      kept[#kept + 1] = name
    end
  end
  shadow = table.concat(kept, '|')
  if shadow == '' then redis.call('HDEL', KEYS[3], ARGV[1])
  else redis.call('HSET', KEYS[3], ARGV[1], shadow) end
end
if ARGV[3] == 'd' then
  redis.call('HSET', KEYS[2], ARGV[1], '-' .. ARGV[2])
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  local fields = {unpack(ARGV, 6)}
  fields[#fields + 1] = 'shadow'
  fields[#fields + 1] = shadow
  redis.call('HSET', KEYS[1], unpack(fields))
end
return 1
"""


class RuleWriter:
    def __init__(
        self, indexes: RuleIndexes, *, wait_replicas: int = 0, wait_timeout_s: float = 2.0
    ) -> None:
        """``wait_replicas``: ``write`` returns once that many replicas hold the writes
        (``replication.py``)."""
        self.indexes = indexes
        self.wait_replicas = wait_replicas
        self.wait_timeout_s = wait_timeout_s
        self.client = indexes.client
        self.schema = indexes.schema
        self._apply = self.client.register_script(_APPLY)

    async def applied_versions(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Versions already applied (0: never seen), in one round trip."""
        unique = list(dict.fromkeys(keys))
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (reads only)
        for tenant, rule_id in unique:
            pipe.hget(self.schema.versions_key(tenant), rule_id)
        values = await pipe.execute()
        return {key: abs(int(value or 0)) for key, value in zip(unique, values, strict=True)}

    async def write(
        self,
        events: Sequence[RuleEvent],
        vectors: Mapping[tuple[str, str], bytes],
        *,
        restore: bool = False,
    ) -> list[bool]:
        """Apply each event (upserts need their vector); True where it changed the memory.
        ``restore``: an upsert of exactly the ledger's version writes its missing document."""
        for tenant in {e.target.tenant for e in events if isinstance(e, RuleUpsert)}:
            await self.indexes.ensure(tenant)  # before its documents: searchable at once
        await preload_scripts(self.client, self._apply)
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (scripts are atomic)
        for event in events:
            tenant, rule_id, version = event.target
            keys = [self.schema.doc_key(tenant, rule_id), self.schema.versions_key(tenant),
                    self.schema.shadow_key(tenant), self.schema.settling_key(tenant)]  # fmt: skip
            mode = "r" if restore else "w"
            staged = self.schema.staged_prefix(tenant)
            args: list[str | int | bytes] = [rule_id, version]
            if isinstance(event, RuleUpsert):
                args.extend(("u", mode, staged))
                for name, value in rule_fields(event.rule, vectors[(tenant, rule_id)]).items():
                    args.extend((name, value))
            else:
                args.extend(("d", mode, staged))
            await self._apply(keys=keys, args=args, client=pipe)
        applied = [bool(result) for result in await pipe.execute()]
        await replicated(self.client, {e.target.tenant for e in events},
                         replicas=self.wait_replicas, timeout_s=self.wait_timeout_s)  # fmt: skip
        return applied
