"""Shared helpers for benchmarks: a private stack, services as processes, JSON results."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shared.devstack.process import free_port
from shared.devstack.servers import servers_for_testing

RESULTS = Path(__file__).parent / "results"

SUBJECTS = [
    "customers",
    "employees",
    "drivers",
    "patients",
    "tenants",
    "suppliers",
    "students",
    "contractors",
    "visitors",
    "minors",
    "pharmacists",
    "landlords",
]
ACTIONS = [
    "must not share",
    "may request",
    "shall keep records of",
    "must report",
    "may refuse",
    "shall verify",
    "must encrypt",
    "may not sell",
    "shall disclose",
    "must obtain consent for",
]
OBJECTS = [
    "personal data",
    "medical records",
    "refund requests",
    "safety incidents",
    "payment details",
    "location history",
    "contracts",
    "complaints",
    "invoices",
    "identity documents",
    "test results",
    "working hours",
]
CONDITIONS = ["within 30 days", "before the end of each quarter", "unless required by law",
              "when asked in writing", "for at least ten years", "after a court order",
              "without undue delay", "in every region where they operate"]  # fmt: skip


def synthetic_rules(n: int, seed: int = 0) -> list[str]:
    """Rule-like English sentences (~20 words), varied enough for realistic embeddings."""
    rng = random.Random(seed)
    return [
        f"Rule {i}: {rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(OBJECTS)} "
        f"{rng.choice(CONDITIONS)}, and {rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} "
        f"{rng.choice(OBJECTS)}."
        for i in range(n)
    ]


def percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(array, 50)), 3),
        "p90": round(float(np.percentile(array, 90)), 3),
        "p99": round(float(np.percentile(array, 99)), 3),
        "max": round(float(array.max()), 3),
    }


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "host": platform.node()}


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "at": time.time(), **result}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    return path


def merge_result(name: str, owned: tuple[str, ...], result: dict[str, Any]) -> Path:
    """Write ``result`` into ``bench/results/<name>.json`` keeping the keys other benchmarks
    wrote there (a file several benchmarks share); ``owned``: the key prefixes this one
    writes, dropped from the old file first (a key it no longer writes does not linger)."""
    path = RESULTS / f"{name}.json"
    kept = json.loads(path.read_text()) if path.exists() else {}
    kept = {k: v for k, v in kept.items()
            if k not in ("benchmark", "machine", "at") and not k.startswith(owned)}  # fmt: skip
    return write_result(name, {**kept, **result})


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def private_stack() -> Iterator[dict[str, str]]:
    """The servers given by KAFKA_BOOTSTRAP/REDIS_URL, or a fresh local stack. SIGTERM (a
    ``timeout``) stops the stack too: without the handler Python exits at once and leaves the
    broker running, taking CPU from the next benchmark."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with (
        tempfile.TemporaryDirectory(prefix="alignstream-bench-") as state,
        servers_for_testing(Path(state)) as env,
    ):
        yield env


@contextlib.contextmanager
def service_process(
    name: str, env: dict[str, str], *, ready_timeout_s: float = 180.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``alignstream serve NAME`` as its own process until the block ends (SIGTERM). The
    block starts once its ``/readyz`` answers 200 (every consumer has its partitions), so a
    measurement never includes the service's start-up."""
    port = int(env.get("ALIGNSTREAM_HTTP_PORT") or free_port())  # the caller's, if it chose
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", name],
        env={**os.environ, "ALIGNSTREAM_LOG_LEVEL": "WARNING", **env,
             "ALIGNSTREAM_HTTP_HOST": "127.0.0.1", "ALIGNSTREAM_HTTP_PORT": str(port)},
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_ready(process, port, name, ready_timeout_s)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(process: subprocess.Popen[bytes], port: int, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before it was ready")
        url = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as reply:
            if reply.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s")
