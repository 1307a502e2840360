"""``alignstream demo``: the whole pipeline on the local stack, end to end, in under two minutes.

The command imports the services only when it runs (``demo_run``): every other command, ``serve``
included, loads only what it uses, so a service exports only its own metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import typer

from services.cli.progress import console, errors, waiting_for
from services.cli.quiet import stderr_to
from services.generation.models.split_gguf import SPLIT_MODELS
from shared.devstack.servers import DEFAULT_STATE_DIR, LocalStack
from shared.logging import configure_logging
from shared.settings import KafkaSettings

DEMO_LOG = Path(".alignstream/demo.log")


def demo(
    keep_stack: bool = typer.Option(False, help="Leave the broker and Redis running."),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="Local stack state."),
    log_file: Path = typer.Option(DEMO_LOG, help="Where engine and library logs go."),
    record: Path | None = typer.Option(None, hidden=True, help="Write the answers as JSON."),
    model: str | None = typer.Option(
        None,
        "--model",
        help="A benchmark model (qwen2.5-coder-0.5b or -1.5b, after "
        "`alignstream models prepare NAME`) or a model folder. Default: SmolLM2-135M-Instruct.",
    ),
) -> None:
    """Run the pipeline end to end on the local stack with sample rules and questions."""
    started = time.perf_counter()
    if model in SPLIT_MODELS:
        errors.print(SPLIT_MODELS[model].notice, markup=False)
    # vLLM's start-up notices go to the log file with everything else on stderr.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")
    with stderr_to(log_file):
        configure_logging("demo", level="INFO", json_lines=False)
        stack = LocalStack.remembered(state_dir)
        already_running = all(s.healthy for s in stack.status())
        with waiting_for("starting the local stack: a Kafka-protocol broker and Redis"):
            stack.up()
        from services.cli.demo_run import run_demo

        try:
            answers = asyncio.run(run_demo(KafkaSettings(bootstrap=stack.kafka.address), model))
        finally:
            if not keep_stack and not already_running:
                stack.down()
    console.print(f"done in {time.perf_counter() - started:.0f} s; engine and library logs: "
                  f"{log_file}")  # fmt: skip
    if record is not None:  # bench.newcomer
        shown = [{"tenant": a.tenant, "model": a.model, "ok": a.ok, "text": a.text}
                 for a in answers]  # fmt: skip
        record.write_text(json.dumps(shown, ensure_ascii=False), encoding="utf-8")
