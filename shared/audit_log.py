"""Reading the whole audit trail (``audit.log``) from the start (``shared/replay.py``), with the
signature check of the pipeline key when one is set
(a forged record is counted and left out, never trusted)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from shared import events
from shared.dlq import PoisonMessage
from shared.replay import TopicReplay
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
    read = AuditLogRead()
    async with TopicReplay(kafka, topic) as replay:
        async for records in replay.batches(idle_ms=idle_ms):
            for record in records:
                try:
                    if check is not None:
                        check(record)
                    read.links.append(events.AuditLink.model_validate_json(record.value))
                except (PoisonMessage, ValidationError):
                    read.rejected += 1
    return read
