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
from shared.testing.openai_server import ChatCompletionServer
from shared.topics import CHAT_REQUESTS, RULES_EVENTS
from tests.samples import sample_rule


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
        self,
        name: str,
        env: dict[str, str],
        log: Path,
        *,
        wrapper: Sequence[str] = (),
        checkout: Path | None = None,
    ) -> None:
        self.name = name
        self.wrapper = list(wrapper)
        """A command the service runs under (e.g. tests/integration/read_only_root.sh)."""
        self.checkout = checkout
        """Another checkout to run the service from, with its own .venv (None: this one)."""
        self.port = free_port()
        self.env = {**os.environ, **env, "ALIGNSTREAM_HTTP_HOST": "127.0.0.1",
                    "ALIGNSTREAM_HTTP_PORT": str(self.port)}  # fmt: skip
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        root = self.checkout or Path(__file__).parents[2]
        python = str(root / ".venv/bin/python") if self.checkout else sys.executable
        command = [*self.wrapper, python, "-m", "services.cli", "serve", self.name]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, cwd=root, stdout=out,
                                            stderr=subprocess.STDOUT)  # fmt: skip

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


class FastModel(ChatCompletionServer):
    """Answers at once; exam questions (Chinese) take 0.3 s so a job is still running when a
    fault strikes."""

    async def answer(self, messages: list[dict[str, str]]) -> str:
        question = messages[-1]["content"]
        if not question.isascii():
            await asyncio.sleep(0.3)
        return "A"


def service_env(
    cli_env: dict[str, str], prefix: str, model: ChatCompletionServer, services: Sequence[str]
) -> dict[str, str]:
    """Environment of ``alignstream serve`` subprocesses under fault tests: fast group joins,
    generation through ``model``, a grading sweep that resends unanswered questions after 2 s."""
    return {
        **cli_env,
        "ALIGNSTREAM_KAFKA_PARTITIONS_OVERRIDE": "2",
        "ALIGNSTREAM_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "ALIGNSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "200",
        "ALIGNSTREAM_LOG_JSON": "false",
        "ALIGNSTREAM_EMBEDDER_THREADS": "1",
        "ALIGNSTREAM_GENERATION_BACKEND": "openai",
        "ALIGNSTREAM_OPENAI_BASE_URL": model.base_url,
        "ALIGNSTREAM_OPENAI_MODEL": "fast",
        "ALIGNSTREAM_GRADING_WINDOW": "2",
        "ALIGNSTREAM_GRADING_SWEEP_INTERVAL_S": "0.2",
        "ALIGNSTREAM_GRADING_UNSENT_AFTER_S": "2",
        **{f"ALIGNSTREAM_{name.upper()}_GROUP_ID": f"{prefix}.{name}" for name in services},
    }


def rule_versions(rules: int, versions: int) -> list[events.RuleUpsert]:
    """Every rule in every version, versions in order (as an admin tool would publish)."""
    return [
        events.RuleUpsert(
            rule=sample_rule(
                rule_id=f"r{r}", version=v, text=f"Rule {r}, version {v}: share nothing."
            )
        )
        for v in range(1, versions + 1)
        for r in range(rules)
    ]
