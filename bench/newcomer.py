"""The newcomer's path, timed on a fresh clone: ``bootstrap.sh`` (warm pip cache), then
``alignstream demo`` as a person runs it (its own local stack, the default model), then every
README example that reads the project's files (``bench/readme_examples.py``).

Writes ``bench/results/newcomer.json``: ``bootstrap_s``, ``demo_s``, ``demo_lines`` (lines the
demo prints at 120 columns), ``demo_answers`` and ``demo_nonempty_answers`` (answers with at least
one word), ``readme_examples_total`` and ``readme_examples_run`` (those that need no judge; the
others counted in ``readme_examples_needing_a_judge``). Targets: ``demo_s`` <= 120, every answer
non-empty, every example run.

    python -m bench.newcomer [--skip-bootstrap]   # --skip-bootstrap: this checkout, as it is
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import readme_examples
from bench.common import write_result

ROOT = Path(__file__).parents[1]
DEMO_TARGET_S = 120.0


def time_bootstrap(clone: Path) -> float:
    """A fresh clone of this checkout (committed files only) and its bootstrap."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    started = time.perf_counter()
    subprocess.run(["./scripts/bootstrap.sh"], cwd=clone, check=True)
    return time.perf_counter() - started


def time_demo(checkout: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "answers.json"
        state = Path(folder) / "stack"  # a stack of its own, started and stopped by the demo
        env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
        env.pop("KAFKA_BOOTSTRAP", None)
        env.pop("REDIS_URL", None)
        command = [str(checkout / ".venv/bin/alignstream"), "demo", "--state-dir", str(state),
                   "--record", str(record)]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"the demo failed (exit {done.returncode})")
        answers = json.loads(record.read_text(encoding="utf-8"))
    nonempty = [a for a in answers if a["ok"] and a["text"].split()]
    return {
        "demo_s": round(elapsed, 1),
        "demo_lines": len(done.stdout.splitlines()),
        "demo_stderr_lines": len(done.stderr.splitlines()),
        "demo_answers": len(answers),
        "demo_nonempty_answers": len(nonempty),
        "demo_model": answers[0]["model"] if answers else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-bootstrap", action="store_true")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        checkout = ROOT
        if not args.skip_bootstrap and shutil.which("git"):
            checkout = Path(folder) / "alignstream"
            result["bootstrap_s"] = round(time_bootstrap(checkout), 1)
        result.update(time_demo(checkout))
        result.update(readme_examples.run(checkout))
    result["demo_target_s"] = DEMO_TARGET_S
    result["demo_within_target"] = result["demo_s"] <= DEMO_TARGET_S
    result["all_answers_nonempty"] = result["demo_nonempty_answers"] == result["demo_answers"]
    write_result("newcomer", result)


if __name__ == "__main__":
    main()
