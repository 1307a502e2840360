"""The audit trail on the real stack: entries on ``audit.entries`` are chained per tenant by
ingest onto ``audit.log``; the chain verifies; a crash between taking a sequence number and
publishing the link leaves neither a gap nor a fork; an export whose records are removed or
edited fails ``audit verify``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.ingest.app import IngestService
from services.ingest.audit_chainer import AuditChainer
from services.ingest.settings import IngestSettings
from shared import events
from shared.audit_chain import verify
from shared.audit_log import AuditLogRead, read_audit_log
from shared.client import AlignstreamClient
from shared.dlq import Record
from shared.topics import AUDIT_ENTRIES
from tests.integration.helpers import alignstream_cli


def entry(tenant: str, i: int) -> events.AuditEntry:
    return events.AuditEntry(
        tenant=tenant, request_id=f"{tenant}-{i}", question_sha256="a" * 64,
        grounded_in=(events.RuleRef(rule_id="refunds", version=i),),
        strategy=events.Strategy.OPO, outcome="ok", answered_at=datetime.now(UTC),
    )  # fmt: skip


async def chained(settings: IngestSettings, count: int) -> AuditLogRead:
    for _ in range(150):
        read = await read_audit_log(settings.kafka, idle_ms=100)
        if len(read.links) >= count:
            return read
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(read.links)} of {count} audit records chained")


async def test_entries_are_chained_per_tenant_and_tampering_fails_verify(
    ingest: IngestService, ingest_settings: IngestSettings, cli_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    async with AlignstreamClient(ingest_settings.kafka) as client:
        for i in range(1, 6):
            await client.send(AUDIT_ENTRIES, entry("acme", i))
        for i in range(1, 3):
            await client.send(AUDIT_ENTRIES, entry("beta", i))
        await client.flush()
    read = await chained(ingest_settings, 7)
    report = verify(read.links)
    assert report.ok, report.problems
    assert report.tenants == {"acme": 5, "beta": 2}
    acme = sorted(read.of("acme"), key=lambda link: link.seq)
    assert [link.entry.request_id for link in acme] == [f"acme-{i}" for i in range(1, 6)]

    export = tmp_path / "acme.jsonl"
    code, output = await alignstream_cli(cli_env, "audit", "export", "--tenant", "acme",
                                         "--out", str(export))  # fmt: skip
    assert code == 0, output
    lines = export.read_text().splitlines()
    assert len(lines) == 5
    code, output = await alignstream_cli(cli_env, "audit", "verify", "--file", str(export))
    assert code == 0, output
    code, output = await alignstream_cli(cli_env, "audit", "verify")  # the log itself
    assert code == 0, output

    removed = tmp_path / "removed.jsonl"
    removed.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    code, output = await alignstream_cli(cli_env, "audit", "verify", "--file", str(removed))
    assert (code, "record 3 is missing" in output) == (1, True), output
    edited = tmp_path / "edited.jsonl"
    edited.write_text("\n".join([lines[0], lines[1].replace('"ok"', '"timeout"'), *lines[2:]]))
    code, output = await alignstream_cli(cli_env, "audit", "verify", "--file", str(edited))
    assert (code, "record 2 (acme-2) was altered" in output) == (1, True), output


async def test_a_crash_after_taking_a_sequence_number_leaves_no_gap(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    published: list[events.AuditLink] = []
    crash = [True]

    async def publish(link: events.AuditLink) -> None:
        if crash[0]:
            crash[0] = False
            raise ConnectionError("broker gone")
        published.append(link)

    chainer = AuditChainer(redis_client, prefix, publish)
    first = Record(topic="audit.entries", partition=0, offset=10, key=b"acme", value=b"",
                   headers={})  # fmt: skip
    second = Record(topic="audit.entries", partition=0, offset=11, key=b"acme", value=b"",
                    headers={})  # fmt: skip
    one, two = entry("acme", 1), entry("acme", 2)
    with pytest.raises(ConnectionError):
        await chainer.chain(first, one)
    assert await chainer.chain(first, one) is None  # redelivered: published as pending, once
    appended = await chainer.chain(second, two)
    assert appended is not None
    assert [link.seq for link in published] == [1, 2]
    assert verify(published).ok
    assert await chainer.chain(second, two) is None  # a redelivery of a chained entry
    assert len(published) == 2


async def test_a_batch_is_chained_entry_by_entry_once_even_when_redelivered(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    published: list[events.AuditLink] = []
    fail_at = [3]  # the broker goes away while the batch's third link is published

    async def publish(link: events.AuditLink) -> None:
        if link.seq == fail_at[0]:
            fail_at[0] = 0
            raise ConnectionError("broker gone")
        published.append(link)

    chainer = AuditChainer(redis_client, prefix, publish)
    head = chainer.head_key("acme")
    await redis_client.hset(head, mapping={"p0": "9"})  # a head from before batches: offset 9
    old = Record(topic="audit.entries", partition=0, offset=9, key=b"acme", value=b"", headers={})
    assert await chainer.chain(old, entry("acme", 0)) is None  # chained before: all of it
    batch = events.AuditBatch(tenant="acme", entries=tuple(entry("acme", i) for i in range(1, 5)))
    record = Record(topic="audit.entries", partition=0, offset=10, key=b"acme", value=b"",
                    headers={})  # fmt: skip
    with pytest.raises(ConnectionError):
        await chainer.chain_record(record, batch)
    links = await chainer.chain_record(record, batch)  # the batch redelivered
    assert [link is None for link in links] == [True, True, True, False]  # 3 went as pending
    assert await chainer.chain_record(record, batch) == [None] * 4
    assert [link.seq for link in published] == [1, 2, 3, 4]
    assert [link.entry.request_id for link in published] == [f"acme-{i}" for i in range(1, 5)]
    assert verify(published).ok
