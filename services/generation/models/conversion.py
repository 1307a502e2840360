"""A GGUF file converted once into a Hugging Face folder that vLLM serves, beside a manifest of
checksums; a folder is served only while every file matches (a partial or changed folder is
rebuilt, never served). Shared by the default model and the opt-in benchmark models."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from shared.errors import Hinted

MANIFEST = "alignstream-manifest.json"


class ModelUnavailable(Hinted):
    """The model cannot be prepared or found; ``hint`` says what to do."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_converted(folder: Path, source_sha256: str) -> bool:
    """The folder holds a complete conversion of the pinned source, every file unchanged."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, str] = manifest["files"]
        if manifest.get("source_sha256") != source_sha256 or not files:
            return False
        return all(sha256_of(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def write_converted(
    folder: Path, source: str, source_sha256: str, convert: Callable[[Path], None]
) -> Path:
    """Run ``convert`` into a staging folder beside ``folder``, record its files' checksums and
    move it into place at once (a reader sees no folder or a complete one)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        convert(staging)
        files = {p.name: sha256_of(p) for p in sorted(staging.iterdir()) if p.is_file()}
        manifest = {"source": source, "source_sha256": source_sha256, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def convert_gguf(source: Path, target: Path, *, chat_template: str | None = None) -> None:
    """transformers' GGUF loader dequantizes the file into a float32 Hugging Face folder.
    ``chat_template``: the template the tokenizer gets instead of the file's own."""
    try:
        import gguf  # noqa: F401  (transformers' GGUF loader needs it)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelUnavailable(f"converting the model needs {exc.name}",
                               "run ./scripts/bootstrap.sh") from exc  # fmt: skip
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # The loader marks the model as GGUF-quantized although its weights are now plain float32;
    # save_pretrained refuses such a model, and vLLM would look for a quantization method.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
