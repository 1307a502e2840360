"""Red-team prompt files, parsing proposed principles, and de-duplication by similarity."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.grading.datasets import DatasetError, read_jsonl
from shared.embedders.base import Vectors

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$")
MIN_CHARS, MAX_CHARS = 15, 400


def load_prompts(path: Path) -> list[str]:
    """One prompt per line (DRPO's ``mal_train.txt``), or JSONL objects with ``prompt``."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.suffix in (".jsonl", ".json"):
        prompts = []
        for line_no, row in read_jsonl(path):
            if "prompt" not in row:
                raise DatasetError(f"{path}:{line_no}: expected a JSON object with prompt")
            prompts.append(str(row["prompt"]))
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        prompts = [line.strip() for line in lines if line.strip()]
    if len(prompts) < 2:
        raise DatasetError(f"{path}: at least 2 prompts needed (a training and a held-out part)")
    return prompts


def split(prompts: Sequence[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out): the held-out share never informs the principles."""
    order = list(prompts)
    random.Random(seed).shuffle(order)
    cut = max(1, min(len(order) - 1, round(len(order) * holdout)))
    return order[cut:], order[:cut]


def parse_principles(text: str, limit: int) -> list[str]:
    """The bulleted lines of a reply that look like principles (length-checked), in order."""
    found = []
    for line in text.splitlines():
        match = _BULLET.match(line)
        if match and MIN_CHARS <= len(match.group(1)) <= MAX_CHARS:
            found.append(match.group(1))
    return found[:limit]


def distinct(vectors: Vectors, threshold: float) -> list[int]:
    """Indexes of the rows to keep: each kept row is less similar than ``threshold`` to every
    row kept before it (first come, first kept)."""
    kept: list[int] = []
    for i, vector in enumerate(vectors):
        if not kept or float(np.max(vectors[kept] @ vector)) < threshold:
            kept.append(i)
    return kept
