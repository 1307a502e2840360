"""Every example of the README that reads the project's files (``examples/``), run as the README
writes it on a checkout: a local stack of its own, the services started with ``alignstream serve``
(the default model), each command in turn. Examples that need a judge (an LLM endpoint a
newcomer supplies: ``ALIGNSTREAM_JUDGE_BASE_URL``) are counted apart and not run; their jobs are
tested with a scripted judge (tests/integration/test_research_jobs.py and the like).

    python -m bench.readme_examples [--checkout PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.devstack.process import free_port
from tests.integration.helpers import ServiceProcess
from tests.integration.test_readme import readme_commands

ROOT = Path(__file__).parents[1]
NEEDS_A_JUDGE = (
    "exam generate",
    "constitution discover",
    "prompts optimize",
    "synth course-correction",
    "--task course-correction",
    "--task aspects",
)
"""What a command's job asks an LLM judge (or optimizer) for: a newcomer has none."""
SERVICES = ("ingest", "retrieval", "generation", "grading")
COMMAND_TIMEOUT_S = 900


def as_written(line: str) -> list[str]:
    """The command's words, its optional ``[...]`` parts left out."""
    return shlex.split(re.sub(r"\[[^\]]*\]", " ", line))[1:]


def examples() -> tuple[list[str], list[str]]:
    """(runnable, needing a judge): README commands that read a file under examples/."""
    found = [c for c in readme_commands() if any(t.startswith("examples/") for t in c.split())]
    judged = [c for c in found if any(marker in c for marker in NEEDS_A_JUDGE)]
    return [c for c in found if c not in judged], judged


@contextlib.contextmanager
def services(checkout: Path, env: dict[str, str], logs: Path) -> Iterator[None]:
    """The pipeline's services as a person starts them, each until it answers /readyz."""
    started = [ServiceProcess(name, env, logs / f"{name}.log", checkout=checkout)
               for name in SERVICES]  # fmt: skip
    try:
        for service in started:
            service.start()
            asyncio.run(service.ready(timeout_s=600))
        yield
    finally:
        for service in started:
            service.stop()


def run(checkout: Path) -> dict[str, Any]:
    runnable, judged = examples()
    cli = str(checkout / ".venv/bin/alignstream")
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder)
        ports = ["--state-dir", str(state / "stack"), "--kafka-port", str(free_port()),
                 "--redis-port", str(free_port())]  # fmt: skip
        up = subprocess.run([cli, "stack", "up", *ports, "--env"], cwd=checkout, check=True,
                            capture_output=True, text=True)  # fmt: skip
        stack = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.split("\n")
                     if line.startswith("export "))  # fmt: skip
        env = {**os.environ, **stack, "COLUMNS": "120", "TERM": "dumb",
               "ALIGNSTREAM_GRADING_DATA_ROOT": str(state / "exams")}  # fmt: skip
        try:
            with services(checkout, env, state):
                started = time.perf_counter()
                for line in runnable:
                    done = subprocess.run([cli, *as_written(line)], cwd=checkout, env=env,
                                          capture_output=True, text=True,
                                          timeout=COMMAND_TIMEOUT_S)  # fmt: skip
                    if done.returncode != 0:
                        failed.append(line)
                        print(f"FAILED ({done.returncode}): {line}\n{done.stdout}{done.stderr}")
                elapsed = time.perf_counter() - started
        finally:
            subprocess.run([cli, "stack", "down", *ports], cwd=checkout, check=False,
                           capture_output=True)  # fmt: skip
    return {
        "readme_examples_total": len(runnable),
        "readme_examples_run": len(runnable) - len(failed),
        "readme_examples_failed": failed,
        "readme_examples_s": round(elapsed, 1),
        "readme_examples_needing_a_judge": len(judged),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkout", type=Path, default=ROOT)
    print(run(parser.parse_args().checkout.resolve()))


if __name__ == "__main__":
    main()
