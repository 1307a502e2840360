"""Keep the engine's start-up chatter (~60 lines of vLLM/torch notices) out of the service's logs.

vLLM and torch read these variables when they are imported, in this process and in the engine's
worker processes, so they are set before the first import. A variable the user set wins.
``ALIGNSTREAM_LOG_LEVEL=DEBUG`` lets vLLM's INFO lines through.
"""

from __future__ import annotations

import logging
import os
import warnings


def quiet_engine_logs(level: int | None = None) -> None:
    effective = logging.getLogger().getEffectiveLevel() if level is None else level
    debug = effective <= logging.DEBUG
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO" if debug else "ERROR")
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout is for output
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # c10 notices (NUMA binding, ...)
    # Deprecation notices raised inside vLLM and torch: nothing for an operator to act on.
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(vllm|torch|transformers)")
    for library in ("vllm", "torch"):
        logging.getLogger(library).setLevel(logging.INFO if debug else logging.ERROR)
