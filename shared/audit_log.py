"""Reading the whole audit trail (``audit.log``) from the start: every partition up to its end
offset at the start of the read, with the signature check of the pipeline key when one is set
(a forged record is counted and left out, never trusted)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from shared import events
from shared.dlq import PoisonMessage, Record
from shared.kafka import client_security_kwargs
from shared.settings import KafkaSettings
from shared.signing import PipelineSignatures
from shared.topics import AUDIT_LOG


@dataclass
class AuditLogRead:
    links: list[events.AuditLink] = field(default_factory=list)
    rejected: int = 0
    """Records that failed the signature check or did not decode."""

    def of(self, tenant: str | None, since: datetime | None = None) -> Iterator[events.AuditLink]:
        for item in self.links:
            if (tenant is None or item.tenant == tenant) and (
                since is None or item.entry.answered_at >= since
            ):
                yield item


async def read_audit_log(kafka: KafkaSettings, *, idle_ms: int = 500) -> AuditLogRead:
    topic = kafka.topics(AUDIT_LOG)
    check = PipelineSignatures(kafka).check_for(topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest",
                                **client_security_kwargs(kafka))  # fmt: skip
    read = AuditLogRead()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return read
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while True:
            fetched = await consumer.getmany(timeout_ms=idle_ms, max_records=1000)
            for records in fetched.values():
                for raw in records:
                    record = Record.from_consumer_record(raw)
                    try:
                        if check is not None:
                            check(record)
                        read.links.append(events.AuditLink.model_validate_json(record.value))
                    except (PoisonMessage, ValidationError):
                        read.rejected += 1
            if not fetched:
                positions = [await consumer.position(tp) for tp in partitions]
                if all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True)):
                    return read
    finally:
        await consumer.stop()
