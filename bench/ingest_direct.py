"""The fair baseline of bulk ingest: the same documents embedded and written into the same kind
of index by the ingest service's own code (``RuleIngestor``, ``RuleWriter``), in batches of the
service's ``batch_max``, with no Kafka and no service around it. Run in a fresh process by
``bench/bulk_ingest.py`` (BLAS limits are per process); prints rules/s.

    python -m bench.ingest_direct --rules N --batch B --prefix P   # REDIS_URL, EMBEDDER_* from env
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import synthetic_rules
from services.ingest.ingestor import RuleIngestor
from shared import events
from shared.embedders import EmbedderSettings, make_embedder
from shared.memory.index import open_indexes
from shared.memory.schema import RuleSchema
from shared.memory.trees import JurisdictionStore
from shared.memory.writer import RuleWriter
from shared.redis import make_redis
from shared.settings import RedisSettings


async def direct_rate(rules: int, batch: int, prefix: str) -> tuple[float, int]:
    texts = synthetic_rules(rules, seed=2)
    upserts: list[events.MemoryEvent] = [
        events.RuleUpsert(rule=events.Rule(tenant=f"t{i % 10}", rule_id=f"r{i}", version=1, text=t))
        for i, t in enumerate(texts)
    ]
    embedder = make_embedder(EmbedderSettings())
    await embedder.start()
    redis = RedisSettings(key_prefix=prefix)
    schema = RuleSchema(prefix, embedder.dim, embedder.name)
    indexes = await open_indexes(make_redis(redis), schema)
    trees = JurisdictionStore(indexes.client, prefix)
    ingestor = RuleIngestor(RuleWriter(indexes), embedder, trees)
    try:
        await embedder.embed(texts[:batch])  # warm, as the pipeline's warm-up rule does
        started = time.perf_counter()
        applied = 0
        for at in range(0, len(upserts), batch):
            outcomes = await ingestor.apply(upserts[at : at + batch])
            applied += sum(o is events.IndexOutcome.APPLIED for o in outcomes)
        elapsed = time.perf_counter() - started
    finally:
        await embedder.close()
        await indexes.client.aclose()
    return len(upserts) / elapsed, applied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    args = parser.parse_args()
    rate, applied = asyncio.run(direct_rate(args.rules, args.batch, args.prefix))
    print(f"{rate} {applied}")


if __name__ == "__main__":
    main()
