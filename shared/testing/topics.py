"""Reading a topic from the beginning, outside any consumer group (tests, benchmarks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from shared.kafka import client_security_kwargs
from shared.settings import KafkaSettings
from shared.topics import TopicSpec


class TopicReader:
    """Reads a topic from the beginning, independent of any service's consumer group, with the
    deployment's connection and security settings (SASL/TLS included)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    def name(self, spec: TopicSpec, *, dlq: bool = False) -> str:
        topics = self.settings.topics
        return topics.dlq(spec) if dlq else topics(spec)

    async def read(
        self,
        spec: TopicSpec,
        *,
        count: int,
        dlq: bool = False,
        timeout_s: float = 20.0,
        where: Callable[[ConsumerRecord[bytes, bytes]], bool] = lambda _: True,
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The first ``count`` records matching ``where``; fails after ``timeout_s``."""
        consumer = AIOKafkaConsumer(
            self.name(spec, dlq=dlq),
            bootstrap_servers=self.settings.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            **client_security_kwargs(self.settings),
        )
        await consumer.start()
        found: list[ConsumerRecord[bytes, bytes]] = []
        try:
            async with asyncio.timeout(timeout_s):
                while len(found) < count:
                    batches = await consumer.getmany(timeout_ms=100)
                    for records in batches.values():
                        found.extend(r for r in records if where(r))
        except TimeoutError as exc:
            raise AssertionError(
                f"expected {count} records on {self.name(spec, dlq=dlq)}, got {len(found)}"
            ) from exc
        finally:
            await consumer.stop()
        return found[:count]
