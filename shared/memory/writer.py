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

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.events import IndexOutcome, RuleEvent, RuleUpsert
from shared.memory.index import RuleIndexes
from shared.memory.replication import replicated
from shared.memory.schema import rule_fields
from shared.redis import preload_scripts


class WriteResult(enum.IntEnum):
    """What the versioned write did with one event (the Lua script's return code)."""

    STALE = 0
    """A newer version, or this version from another event, is applied: nothing changed."""
    WRITTEN = 1
    ALREADY = 2
    """Another copy of this very event (the other lane's, another instance's) wrote it."""


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class Plan:
    writes: dict[tuple[str, str], RuleEvent]
    """The newest event of each rule that is newer than what Redis has."""
    outcomes: list[IndexOutcome]
    """Expected outcome of each event of the batch, in order (STALE for superseded ones)."""
    copies: frozenset[str] = frozenset()
    """Event ids applied already by another copy of the event (APPLIED, nothing to write)."""

    @property
    def upserts(self) -> list[RuleUpsert]:
        return [e for e in self.writes.values() if isinstance(e, RuleUpsert)]


def plan(
    events: Sequence[RuleEvent],
    applied: Mapping[tuple[str, str], int],
    *,
    restore: bool = False,
    applied_by: Mapping[tuple[str, str], str] | None = None,
) -> Plan:
    """Choose the writes for a batch: per rule only the highest version above the applied one
    (``restore``: also the applied version itself, to write its document again).

    Only those are embedded, so replays and superseded versions cost no embedding. An event
    whose version some copy of it already applied (``applied_by``: the ledger's event ids) is
    APPLIED without a write: the edit is servable, whichever lane or instance wrote it.
    """
    applied_by = applied_by or {}
    newest: dict[tuple[str, str], int] = {}
    for event in events:
        tenant, rule_id, version = event.target
        key = (tenant, rule_id)
        newest[key] = max(version, newest.get(key, 0))
    writes: dict[tuple[str, str], RuleEvent] = {}
    outcomes: list[IndexOutcome] = []
    copies: set[str] = set()
    for event in events:
        tenant, rule_id, version = event.target
        key = (tenant, rule_id)
        current = applied.get(key, 0)
        newer = version >= current if restore else version > current
        wins = version == newest[key] and newer and key not in writes
        if wins:
            writes[key] = event
        # A copy of the event that applied this version (before this batch), or of the one
        # this batch writes (a redelivery in the same batch).
        applied_copy = version == current and applied_by.get(key) == event.event_id
        written_copy = key in writes and writes[key].event_id == event.event_id
        if not wins and (applied_copy or written_copy):
            copies.add(event.event_id)
        applied_here = wins or event.event_id in copies
        outcomes.append(IndexOutcome.APPLIED if applied_here else IndexOutcome.STALE)
    return Plan(writes, outcomes, frozenset(copies))


# KEYS: doc key, versions hash, shadow hash, settling hash, applied-by hash. ARGV: rule_id,
# version, op ("u"/"d"), mode ("w" write or "r" restore), the tenant's staged-document key prefix,
# the event id, then field/value pairs. Returns 1 written, 2 already applied by this event (a
# copy of it won), 0 stale. The ledger holds -version after a delete. The document's ``shadow``
# (the open change sets that stage this rule) comes from the shadow hash, so a new live version
# stays hidden from the candidate searches of those sets. A set that is settling (promoted, its
# documents not all in place yet) loses its staged version of this rule: the new version
# supersedes it.
_APPLY = """
local raw = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local current = math.abs(raw)
local version = tonumber(ARGV[2])
if version < current then return 0 end
if version == current then
  if ARGV[4] ~= 'r' then
    if redis.call('HGET', KEYS[5], ARGV[1]) == ARGV[6] then return 2 end
    return 0
  end
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
redis.call('HSET', KEYS[5], ARGV[1], ARGV[6])
if ARGV[3] == 'd' then
  redis.call('HSET', KEYS[2], ARGV[1], '-' .. ARGV[2])
  redis.call('DEL', KEYS[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  local fields = {unpack(ARGV, 7)}
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
        return (await self.applied(keys))[0]

    async def applied(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str]]:
        """Versions already applied (0: never seen) and the events that applied them, in one
        round trip."""
        unique = list(dict.fromkeys(keys))
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (reads only)
        for tenant, rule_id in unique:
            pipe.hget(self.schema.versions_key(tenant), rule_id)
            pipe.hget(self.schema.applied_by_key(tenant), rule_id)
        values = await pipe.execute()
        versions, applied_by = values[0::2], values[1::2]
        return (
            {key: abs(int(value or 0)) for key, value in zip(unique, versions, strict=True)},
            {key: _text(by) for key, by in zip(unique, applied_by, strict=True) if by},
        )

    async def write(
        self,
        events: Sequence[RuleEvent],
        vectors: Mapping[tuple[str, str], bytes],
        *,
        restore: bool = False,
    ) -> list[WriteResult]:
        """Apply each event (upserts need their vector); truthy where the memory now holds it:
        ``WRITTEN``, or ``ALREADY`` by another copy of the event. ``restore``: an upsert of
        exactly the ledger's version writes its missing document."""
        for tenant in {e.target.tenant for e in events if isinstance(e, RuleUpsert)}:
            await self.indexes.ensure(tenant)  # before its documents: searchable at once
        await preload_scripts(self.client, self._apply)
        pipe = self.client.pipeline(transaction=False)  # pragma: no mutate (scripts are atomic)
        for event in events:
            tenant, rule_id, version = event.target
            keys = [self.schema.doc_key(tenant, rule_id), self.schema.versions_key(tenant),
                    self.schema.shadow_key(tenant), self.schema.settling_key(tenant),
                    self.schema.applied_by_key(tenant)]  # fmt: skip
            mode = "r" if restore else "w"
            staged = self.schema.staged_prefix(tenant)
            args: list[str | int | bytes] = [rule_id, version]
            if isinstance(event, RuleUpsert):
                args.extend(("u", mode, staged, event.event_id))
                for name, value in rule_fields(event.rule, vectors[(tenant, rule_id)]).items():
                    args.extend((name, value))
            else:
                args.extend(("d", mode, staged, event.event_id))
            await self._apply(keys=keys, args=args, client=pipe)
        applied = [WriteResult(int(result)) for result in await pipe.execute()]
        await replicated(self.client, {e.target.tenant for e in events},
                         replicas=self.wait_replicas, timeout_s=self.wait_timeout_s)  # fmt: skip
        return applied


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
