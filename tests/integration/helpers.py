"""Helpers for integration tests: the CLI and services as subprocesses, paced sends (the
public doubles are in ``shared/testing``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from shared import events
from shared.client import AlignstreamClient
from shared.devstack.servers import free_port
from shared.topics import CHAT_REQUESTS, RULES_EVENTS


async def alignstream_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run the CLI in a subprocess without blocking the services running in this process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, cwd=Path(__file__).parents[2],
        env={**os.environ, "COLUMNS": "200", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return process.returncode or 0, output.decode()


class ServiceProcess:
    """One ``alignstream serve NAME`` subprocess that a test can kill -9 and start again; its
    output goes to ``log`` (appended across restarts)."""

    def __init__(
        self, name: str, env: dict[str, str], log: Path, *, wrapper: Sequence[str] = ()
    ) -> None:
        self.name = name
        self.wrapper = list(wrapper)
        """A command the service runs under (e.g. tests/integration/read_only_root.sh)."""
        self.port = free_port()
        self.env = {**os.environ, **env, "ALIGNSTREAM_HTTP_HOST": "127.0.0.1",
                    "ALIGNSTREAM_HTTP_PORT": str(self.port)}  # fmt: skip
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [*self.wrapper, sys.executable, "-m", "services.cli", "serve", self.name]
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
