"""Audit entries leave in per-tenant batches: by count or after the wait, split when too large,
retried through an outage, and each answer learns whether its own entry went out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from services.generation.audit_batches import AuditBatches
from shared import events
from shared.service import Key
from shared.testing.publishers import RecordingPublisher


def entry(tenant: str, i: int) -> events.AuditEntry:
    return events.AuditEntry(
        tenant=tenant, request_id=f"{tenant}-{i}", question_sha256="a" * 64,
        strategy=events.Strategy.OPO, outcome="ok", answered_at=datetime.now(UTC),
    )  # fmt: skip


def batches(out: RecordingPublisher) -> list[list[str]]:
    return [[e.request_id for e in events.AuditBatch.model_validate_json(body).entries]
            for _, body in out.bodies["audit"]]  # fmt: skip


async def test_entries_leave_per_tenant_by_count_or_after_the_wait() -> None:
    out = RecordingPublisher()
    audit = AuditBatches(out, "audit", backoff_s=0.01, stopping=lambda: False, wait_s=0.05,
                         max_entries=3)  # fmt: skip
    added = [audit.add(entry("a", i)) for i in range(4)]
    added.append(audit.add(entry("b", 0)))
    await asyncio.sleep(0.01)
    assert batches(out) == [["a-0", "a-1", "a-2"]]  # full: out at once
    assert all(future.done() for future in added[:3])
    assert not added[3].done()  # waits for its batch: the commit of its answer waits with it
    assert await asyncio.gather(*added) == [True] * 5
    assert sorted(batches(out)) == [["a-0", "a-1", "a-2"], ["a-3"], ["b-0"]]
    assert sorted(str(key) for key, _ in out.bodies["audit"]) == ["a", "a", "b"]  # by tenant


async def test_a_batch_too_large_is_split_in_halves() -> None:
    one = len(
        RecordingPublisher().encode_bounded(events.AuditBatch(tenant="a", entries=(entry("a", 0),)))
    )
    out = RecordingPublisher(max_message_bytes=one * 2)  # two entries fit, four do not
    audit = AuditBatches(out, "audit", backoff_s=0.01, stopping=lambda: False, max_entries=4)
    assert await asyncio.gather(*(audit.add(entry("a", i)) for i in range(4))) == [True] * 4
    assert batches(out) == [["a-0", "a-1"], ["a-2", "a-3"]]


class Outage(RecordingPublisher):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def publish_bodies(
        self, topic: str, bodies: Iterable[tuple[Key, bytes]], *,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> None:  # fmt: skip
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        await super().publish_bodies(topic, bodies, headers=headers)


async def test_an_outage_is_retried_and_a_stop_leaves_the_answer_uncommitted() -> None:
    out = Outage(failures=2)
    audit = AuditBatches(out, "audit", backoff_s=0.001, stopping=lambda: False, wait_s=0.001)
    assert await audit.add(entry("a", 0))
    assert batches(out) == [["a-0"]]
    stopped = AuditBatches(Outage(failures=5), "audit", backoff_s=0.001, stopping=lambda: True,
                           wait_s=0.001)  # fmt: skip
    assert not await stopped.add(entry("a", 1))  # not out: its request stays uncommitted
