"""Reading a topic from its start to where it ended when the read began (``memory rebuild``,
``audit export|verify``): every partition assigned, no consumer group, nothing committed.

The read ends once the end offsets reported at the start are reached *and* a fetch comes back
empty: some brokers (Tansu) under-report end offsets, so they alone are not trusted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Self

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.dlq import Record
from shared.kafka import client_security_kwargs
from shared.settings import KafkaSettings


class TopicReplay:
    """``async with TopicReplay(kafka, topic) as replay: async for records in replay.batches()``;
    ``total``: how many records the partitions held between their start and end offsets."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.topic = topic
        self.total = 0
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            **client_security_kwargs(kafka),
        )
        self._partitions: list[TopicPartition] = []
        self._ends: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> Self:
        consumer = self._consumer
        await consumer.start()
        try:
            found = consumer.partitions_for_topic(self.topic) or ()
            self._partitions = [TopicPartition(self.topic, p) for p in found]
            if self._partitions:
                consumer.assign(self._partitions)
                await consumer.seek_to_beginning(*self._partitions)
                starts = {tp: await consumer.position(tp) for tp in self._partitions}
                self._ends = await consumer.end_offsets(self._partitions)
                self.total = sum(self._ends[tp] - starts[tp] for tp in self._partitions)
        except BaseException:
            await consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._consumer.stop()

    async def batches(self, *, max_records: int = 1000, idle_ms: int = 300) -> AsyncIterator[
        list[Record]
    ]:  # fmt: skip
        """The records in fetched batches (each non-empty), up to the end (see the module)."""
        if not self._partitions:
            return
        consumer = self._consumer
        while True:
            fetched = await consumer.getmany(timeout_ms=idle_ms, max_records=max_records)
            if fetched:
                yield [Record.from_consumer_record(raw) for rs in fetched.values() for raw in rs]
                continue
            positions = [await consumer.position(tp) for tp in self._partitions]
            if all(pos >= self._ends[tp] for pos, tp in zip(positions, self._partitions,
                                                            strict=True)):  # fmt: skip
                return
