"""Helpers for integration tests: read topics with a raw aiokafka consumer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from shared.topics import CHAT_REQUESTS, RULES_EVENTS, TopicSpec


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServiceProcess:
    """One ``alignstream serve NAME`` subprocess that a test can kill -9 and start again; its
    output goes to ``log`` (appended across restarts)."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = {**os.environ, **env, "ALIGNSTREAM_HTTP_HOST": "127.0.0.1",
                    "ALIGNSTREAM_HTTP_PORT": str(self.port)}  # fmt: skip
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "services.cli", "serve", self.name]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, cwd=Path(__file__).parents[2],
                                            stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    async def ready(self, timeout_s: float = 90.0) -> float:
        """Wait until ``/readyz`` answers 200; return the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            assert self.process is not None
            assert self.process.poll() is None, f"{self.name} exited; see {self.log}"
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                status = await reader.readline()
                writer.close()
                if b" 200 " in status:
                    return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready after {timeout_s}s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, nothing flushed."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def send_paced(
    client: AlignstreamClient, items: Sequence[events.Event], per_s: float
) -> None:
    """Send rule upserts and chat requests in order, ``per_s`` a second (load that spans a
    fault), then flush."""
    for item in items:
        spec = RULES_EVENTS if isinstance(item, events.RuleUpsert) else CHAT_REQUESTS
        await client.send(spec, item)
        await asyncio.sleep(1 / per_s)
    await client.flush()
