"""Helpers for integration tests: read topics with a raw aiokafka consumer."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from shared.settings import KafkaSettings
from shared.topics import TopicSpec


class TopicReader:
    """Reads a topic from the beginning, independent of any service's consumer group."""

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


async def alignstream_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the CLI in a subprocess without blocking the services running in this process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, cwd=Path(__file__).parents[2],
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


class ScriptedBackend:
    """Base of the tests' scripted generation backends: nothing to start or close; a subclass
    sets ``model`` and writes ``generate``."""

    name = "scripted"
    model = "script"

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass
