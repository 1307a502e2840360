"""The memory is a view of the rule topic: rebuild it by replay, survive a Redis restart."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from services.ingest.app import IngestService
from services.ingest.rebuild import rebuild
from services.ingest.settings import IngestSettings
from shared import events
from shared.client import AlignstreamClient
from shared.devstack.servers import ValkeyServer, free_port
from shared.embedders.use import UniversalSentenceEncoder
from shared.memory.index import RuleIndexes, open_indexes
from shared.memory.schema import RuleSchema
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import RuleWriter
from shared.redis import command, make_redis
from shared.settings import RedisSettings
from shared.testing.topics import TopicReader
from tests.samples import sample_rule


def history() -> list[events.RuleUpsert | events.RuleDelete]:
    """Updates, a delete, an out-of-order version and a replayed event."""
    out: list[events.RuleUpsert | events.RuleDelete] = []
    for i in range(20):
        out.append(
            events.RuleUpsert(rule=sample_rule(rule_id=f"r{i}", version=1, text=f"Rule {i} v1."))
        )
    for i in range(0, 20, 3):
        out.append(
            events.RuleUpsert(rule=sample_rule(rule_id=f"r{i}", version=2, text=f"Rule {i} v2."))
        )
    out.append(events.RuleDelete(tenant="acme", rule_id="r4", version=3))
    out.append(events.RuleUpsert(rule=sample_rule(rule_id="r3", version=1, text="late old")))
    out.append(out[0])
    return out


@dataclass
class Snapshot:
    """Every rule document (without its embedding) and version ledger, and the embeddings."""

    docs: dict[bytes, dict[object, object]]
    vectors: dict[bytes, np.ndarray]

    def __eq__(self, other: object) -> bool:
        # The embedder's floats differ in the last bits with the batch a text was embedded in.
        return (
            isinstance(other, Snapshot)
            and self.docs == other.docs
            and self.vectors.keys() == other.vectors.keys()
            and all(np.allclose(v, other.vectors[k], atol=1e-4) for k, v in self.vectors.items())
        )


async def snapshot(client: aioredis.Redis, schema: RuleSchema) -> Snapshot:
    docs: dict[bytes, dict[object, object]] = {}
    vectors: dict[bytes, np.ndarray] = {}
    async for key in client.scan_iter(match=schema.docs_pattern):
        doc: dict[object, object] = {k: v for k, v in (await client.hgetall(key)).items()}
        vectors[key] = np.frombuffer(doc.pop(b"embedding"), dtype=np.float32)  # type: ignore[call-overload]
        docs[key] = doc
    async for key in client.scan_iter(match=schema.versions_key("*")):
        docs[key] = {k: v for k, v in (await client.hgetall(key)).items()}
    return Snapshot(docs, vectors)


async def test_rebuild_from_topic_gives_the_same_memory(
    ingest: IngestService,
    ingest_settings: IngestSettings,
    client_broker: KafkaBroker,
    reader: TopicReader,
    redis_client: aioredis.Redis,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    assert ingest.ingestor is not None
    schema = ingest.ingestor.writer.schema
    stream = history()
    # The batching producer puts many records in one request: the case where Tansu's reported
    # end offsets fall short of the records really there.
    async with AlignstreamClient(ingest_settings.kafka) as client:
        await client.publish_rules(stream, wait=True, timeout_s=30)
    before = await snapshot(redis_client, schema)
    assert len([k for k in before.docs if k.startswith(schema.doc_prefix("acme").encode())]) == 19

    progress: list[tuple[int, int]] = []
    report = await rebuild(
        ingest_settings.kafka,
        ingest_settings.redis,
        use_embedder,
        drop=True,
        progress=lambda done, total: progress.append((done, total)),
    )

    assert await snapshot(redis_client, schema) == before
    assert report.events == len(stream)
    assert report.invalid == 0
    # --drop keeps the version ledger and restores: exactly the applied version of each of the
    # 19 live rules is written again; superseded versions, the late old r3 and the deleted r4
    # write nothing, whatever the batching.
    assert report.applied == 19
    assert report.applied + report.stale == len(stream)
    assert progress[-1] == (len(stream), len(stream))

    again = await rebuild(ingest_settings.kafka, ingest_settings.redis, use_embedder)
    assert again.applied == 0
    assert await snapshot(redis_client, schema) == before


async def test_redis_restart_loses_no_rule(
    tmp_path: Path, use_embedder: UniversalSentenceEncoder
) -> None:
    server = ValkeyServer(tmp_path, free_port(), appendfsync="always")
    server.start(timeout_s=30)
    settings = RedisSettings(url=server.address, key_prefix="restart")
    schema = RuleSchema("restart", use_embedder.dim, use_embedder.name)
    rules = [sample_rule(rule_id=f"r{i}", text=f"Restart rule {i}.") for i in range(300)]
    try:
        client = make_redis(settings)
        vectors = use_embedder.embed_sync([r.text for r in rules])
        await RuleWriter(await open_indexes(client, schema)).write(
            [events.RuleUpsert(rule=r) for r in rules],
            {(r.tenant, r.rule_id): v.tobytes() for r, v in zip(rules, vectors, strict=True)},
        )
        await client.aclose()  # with appendfsync always, every acknowledged write is on disk
        pid = server.pid()
        assert pid is not None
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        server.start(timeout_s=60)

        client = make_redis(settings)
        await RuleIndexes(client, schema).wait_ready(timeout_s=60)
        info = await command(client, "FT.INFO", schema.index_name("acme"))
        fields = dict(zip(info[::2], info[1::2], strict=True))
        assert int(fields[b"num_docs"]) == len(rules)
        await client.aclose()
    finally:
        server.stop()


async def test_rebuild_replays_the_jurisdiction_tree(
    ingest: IngestService,
    ingest_settings: IngestSettings,
    redis_client: aioredis.Redis,
    use_embedder: UniversalSentenceEncoder,
) -> None:
    tree = events.JurisdictionTree(
        tenant="acme", version=2, default_scope=("CN",),
        nodes=(events.JurisdictionNode(path="CN"), events.JurisdictionNode(path="CN/山东")),
    )  # fmt: skip
    older = tree.model_copy(update={"version": 1, "default_scope": ()})
    # The log only: a fast-lane copy applied after the tree is deleted below would restore it
    # before the rebuild does (a small publish takes both lanes; the first copy confirms it).
    async with AlignstreamClient(ingest_settings.kafka, live_lane_max_events=0) as client:
        await client.publish_rules([tree, older], wait=True, timeout_s=30)
    store = JurisdictionStore(redis_client, ingest_settings.redis.key_prefix)
    assert await store.get("acme") == tree
    await redis_client.delete(store.key("acme"))  # Redis lost it

    report = await rebuild(ingest_settings.kafka, ingest_settings.redis, use_embedder)
    assert (report.applied, report.stale) == (1, 1)  # the newer tree, then the older one: stale
    assert await store.get("acme") == tree
