"""Principle discovery's pure parts: prompt files, the held-out split, parsing, de-duplication."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.grading.datasets import DatasetError
from services.grading.discovery.loop import stop_reason
from services.grading.discovery.principles import distinct, load_prompts, parse_principles, split


def test_load_prompts_txt_and_jsonl(tmp_path: Path) -> None:
    txt = tmp_path / "mal.txt"
    txt.write_text("first prompt\n\nsecond prompt\n")
    assert load_prompts(txt) == ["first prompt", "second prompt"]
    jsonl = tmp_path / "red.jsonl"
    jsonl.write_text('{"prompt": "a"}\n{"prompt": "b"}\n')
    assert load_prompts(jsonl) == ["a", "b"]
    jsonl.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(DatasetError, match=r"red.jsonl:2"):
        load_prompts(jsonl)
    txt.write_text("only one\n")
    with pytest.raises(DatasetError, match="at least 2"):
        load_prompts(txt)


def test_split_is_seeded_disjoint_and_never_empty() -> None:
    prompts = [f"p{i}" for i in range(10)]
    train, held = split(prompts, 0.3, seed=1)
    assert (len(train), len(held)) == (7, 3)
    assert sorted(train + held) == sorted(prompts)
    assert split(prompts, 0.3, seed=1) == (train, held)
    assert [len(part) for part in split(["a", "b"], 0.01, seed=0)] == [1, 1]


def test_parse_principles() -> None:
    reply = ("Here are the principles:\n- Refuse to give instructions for vandalism.\n"
             "2. Do not produce insults about a person's origin or accent.\n- ok\n"
             "* Offer lawful ways to resolve disputes with neighbours.")  # fmt: skip
    assert parse_principles(reply, limit=10) == [
        "Refuse to give instructions for vandalism.",
        "Do not produce insults about a person's origin or accent.",
        "Offer lawful ways to resolve disputes with neighbours.",
    ]  # "ok" is too short to be a principle
    assert len(parse_principles(reply, limit=1)) == 1


def test_distinct_keeps_the_first_of_similar_rows() -> None:
    vectors = np.array([[1, 0], [0.99, 0.141], [0, 1], [0.0, 1.0]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert distinct(vectors, threshold=0.95) == [0, 2]
    assert distinct(vectors, threshold=1.01) == [0, 1, 2, 3]


def test_rounds_stop_when_nothing_is_harmful_nothing_is_new_or_at_the_limit() -> None:
    assert stop_reason(1, 5, harmful=3, published=2) is None
    assert stop_reason(2, 5, harmful=0, published=0) == "stable: no harmful training answer"
    assert stop_reason(2, 5, harmful=3, published=0) == "stable: no new principle"
    assert stop_reason(5, 5, harmful=3, published=2) == "round limit"
