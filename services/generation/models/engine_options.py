"""vLLM engine options derived from the device and the model, so the engine starts unconfigured.

On CPU, vLLM reads ``gpu_memory_utilization`` as a share of *all* RAM and refuses to start when
that much is not free, so the default 0.9 fails on any busy machine; a KV cache sized from the
available memory does not. ``max_model_len`` is left to the model's config unless set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from services.generation.models import smollm2, split_gguf
from services.generation.models.split_gguf import SPLIT_MODELS
from services.generation.settings import VllmSettings

GIB = 1 << 30
CPU_KV_SHARE = 0.1
CPU_KV_MIN, CPU_KV_MAX = GIB // 4, 4 * GIB
GPU_MEMORY_UTILIZATION = 0.9


@dataclass(frozen=True)
class Device:
    kind: Literal["cpu", "gpu"]
    available_memory: int
    """Bytes of RAM free now (CPU KV cache sizing)."""


def available_ram() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def detect_device() -> Device:
    from vllm.platforms import current_platform

    return Device("cpu" if current_platform.is_cpu() else "gpu", available_ram())


def resolve_model(settings: VllmSettings) -> str:
    """The configured model, or the default one (converted now if it is not yet)."""
    if settings.model in SPLIT_MODELS:  # an opt-in benchmark model, by its name
        split = SPLIT_MODELS[settings.model]
        if not split_gguf.is_prepared(split):
            hint = f"alignstream models prepare {split.key}"
            raise smollm2.ModelUnavailable(f"{split.key} is not prepared", hint=hint)
        return str(split.folder)
    if settings.model:
        looks_like_path = settings.model.startswith((".", "/", "~"))
        if looks_like_path and not Path(settings.model).expanduser().is_dir():
            raise smollm2.ModelUnavailable(
                f"model folder {settings.model} does not exist",
                hint="set ALIGNSTREAM_VLLM_MODEL to a model folder, or unset it for the default",
            )
        return str(Path(settings.model).expanduser()) if looks_like_path else settings.model
    return str(smollm2.prepare(smollm2.DEFAULT_MODEL_DIR))


def engine_options(settings: VllmSettings, device: Device, model: str) -> dict[str, Any]:
    """Keyword arguments of vLLM's ``AsyncEngineArgs``."""
    cpu = device.kind == "cpu"
    options: dict[str, Any] = {
        "model": model,
        "dtype": "float32" if cpu and settings.dtype == "auto" else settings.dtype,
        "enforce_eager": cpu if settings.enforce_eager is None else settings.enforce_eager,
        "max_model_len": settings.max_model_len,
        "max_num_seqs": settings.max_num_seqs,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "seed": settings.seed,
        "use_tqdm_on_load": False,  # a progress bar in a service's log is noise
    }
    if settings.revision:  # weights and tokenizer of one snapshot
        options["revision"] = options["tokenizer_revision"] = settings.revision
    if cpu and settings.gpu_memory_utilization is None:
        kv = (
            int(settings.kv_cache_gib * GIB)
            if settings.kv_cache_gib is not None
            else min(CPU_KV_MAX, max(CPU_KV_MIN, int(device.available_memory * CPU_KV_SHARE)))
        )
        options["kv_cache_memory_bytes"] = kv
    else:
        options["gpu_memory_utilization"] = (
            settings.gpu_memory_utilization or GPU_MEMORY_UTILIZATION
        )
    return options
