"""The per-tenant hash chain of the audit trail, and its verification (pure).

Link ``n`` of a tenant has ``hash = SHA-256(prev_hash || canonical JSON of the entry)`` where
``prev_hash`` is link ``n-1``'s hash (64 zeros for link 1). The entry's canonical JSON is its
JSON with sorted keys and no spaces, so the hash does not depend on how a record was stored or
exported. ``verify`` replays the chain in ``seq`` order: a removed record leaves a gap in the
sequence, an altered one no longer hashes to its ``hash``, and a reordered one (an entry moved
to another position) no longer links to its predecessor. The chainer may append a link twice
(at-least-once); an exact repeat of a link is counted, not reported as tampering.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.events import AuditEntry, AuditLink

GENESIS = "0" * 64
MAX_PROBLEMS = 20


def canonical(entry: AuditEntry) -> bytes:
    return json.dumps(entry.model_dump(mode="json"), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()  # fmt: skip


def link_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(entry)).hexdigest()


def link(entry: AuditEntry, seq: int, prev_hash: str) -> AuditLink:
    return AuditLink(tenant=entry.tenant, seq=seq, prev_hash=prev_hash,
                     hash=link_hash(prev_hash, entry), entry=entry)  # fmt: skip


@dataclass
class ChainReport:
    links: int = 0
    repeats: int = 0
    tenants: dict[str, int] = field(default_factory=dict)
    """Tenant -> the last sequence number verified."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def verify(links: Iterable[AuditLink], *, partial: bool = False) -> ChainReport:
    """Check every tenant's chain from its first link (see the module's docstring);
    ``partial``: from the first link present (a fragment, e.g. an export ``--since``)."""
    report = ChainReport()
    chains: dict[str, dict[int, list[AuditLink]]] = defaultdict(lambda: defaultdict(list))
    for item in links:
        report.links += 1
        chains[item.tenant][item.seq].append(item)
    for tenant, by_seq in sorted(chains.items()):
        first_seq = min(by_seq) if partial else 1
        prev = by_seq[first_seq][0].prev_hash if partial else GENESIS
        for seq in range(first_seq, max(by_seq) + 1):
            found = by_seq.get(seq)
            if not found:
                report.problem(f"{tenant}: record {seq} is missing (removed)")
                prev = ""  # the next link cannot be checked against a missing one
                continue
            first, *others = found
            report.repeats += sum(o == first for o in others)
            if any(o != first for o in others):
                report.problem(f"{tenant}: record {seq} appears with different contents")
            if first.entry.tenant != tenant:
                report.problem(f"{tenant}: record {seq} holds an entry of another tenant")
            if link_hash(first.prev_hash, first.entry) != first.hash:
                report.problem(f"{tenant}: record {seq} ({first.entry.request_id}) was altered")
            elif prev and first.prev_hash != prev:
                report.problem(f"{tenant}: record {seq} does not follow record {seq - 1} "
                               "(reordered or replaced)")  # fmt: skip
            prev = first.hash
        report.tenants[tenant] = max(by_seq)
    return report
