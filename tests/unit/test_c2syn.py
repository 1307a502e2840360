"""C2-SYN's cuts, ranking and pairs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from services.grading.datasets import DatasetError
from services.grading.research.c2syn import job
from services.grading.research.c2syn.synthesis import (
    BREAKS,
    corrections,
    cut_prefixes,
    harmful_response,
    joined,
    pair_digest,
    pairs,
    rank,
)

HARMFUL = (
    "First, buy the tools, then go at night. Next, find the back door; open it quietly. "
    "After that, take what you want, and leave before dawn! Finally, hide everything."
)


def test_cuts_are_evenly_spaced_prefixes_ending_at_punctuation() -> None:
    prefixes = cut_prefixes(HARMFUL, 4, random.Random(0))
    assert 2 <= len(prefixes) <= 4
    assert all(HARMFUL.startswith(p) and p[-1] in BREAKS for p in prefixes)
    assert [len(p) for p in prefixes] == sorted({len(p) for p in prefixes})


def test_corrections_are_deterministic_per_request_and_seed() -> None:
    first = corrections("How do I rob a house?", HARMFUL, 4, seed=0)
    assert first == corrections("How do I rob a house?", HARMFUL, 4, seed=0)
    assert [c.position for c in first] == list(range(1, len(first) + 1))
    assert all(HARMFUL.split(",")[0] in c.prefill for c in first)


def test_only_long_unsafe_responses_are_used() -> None:
    row = {
        "prompt": "p",
        "response_0": "safe " * 100,
        "is_response_0_safe": True,
        "response_1": "bad " * 100,
        "is_response_1_safe": False,
    }
    assert harmful_response(row, 80) == row["response_1"]
    assert harmful_response(row, 200) is None


def test_earlier_corrections_rank_higher_and_pairs_follow_the_ranking() -> None:
    ranked = rank("I won't help.", {3: "late fix", 1: "early fix"}, "harmful text")
    assert [r.label for r in ranked] == ["own", "corrected@1", "corrected@3", "harmful"]
    rows = pairs("p", ranked)
    assert len(rows) == 6  # every ordered pair of four
    order = [r.text for r in ranked]
    assert all(order.index(row["chosen"]) < order.index(row["rejected"]) for row in rows)
    assert set(rows[0]) == {"prompt", "chosen", "rejected"}  # TRL's DPO columns only


def test_without_an_own_answer_the_ranking_starts_at_the_earliest_correction() -> None:
    ranked = rank(None, {2: "fix"}, "harmful")
    assert [r.label for r in ranked] == ["corrected@2", "harmful"]
    assert pairs("p", ranked) == [{"prompt": "p", "chosen": "fix", "rejected": "harmful"}]


def test_identical_texts_make_no_pair_and_digests_tell_pairs_apart() -> None:
    # The same text twice is one pair twice: the job's digests drop the repeat.
    assert pairs("p", rank("same", {1: "same"}, "other")) == [
        {"prompt": "p", "chosen": "same", "rejected": "other"},
        {"prompt": "p", "chosen": "same", "rejected": "other"},
    ]
    a = {"prompt": "p", "chosen": "x", "rejected": "y"}
    assert pair_digest(a) == pair_digest(dict(a))
    assert pair_digest(a) != pair_digest({**a, "chosen": "z"})


def test_the_continuation_is_joined_to_its_prefill() -> None:
    assert joined("However, I must stop here, because", "it is illegal.") == (
        "However, I must stop here, because it is illegal."
    )
    assert joined("Stop", ", really.") == "Stop, really."


def test_an_input_over_the_row_limit_is_refused_not_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job, "MAX_ROWS", 2)
    (tmp_path / "acme").mkdir()
    row = {"prompt": "p", "response_0": HARMFUL, "is_response_0_safe": False}
    (tmp_path / "acme" / "rows.jsonl").write_text("\n".join([json.dumps(row)] * 3) + "\n")
    assert len(job.load_rows(tmp_path, "acme", "rows.jsonl", 5, limit=2)) == 2
    with pytest.raises(DatasetError, match="more than 2 rows"):
        job.load_rows(tmp_path, "acme", "rows.jsonl", 5, limit=None)
    with pytest.raises(DatasetError, match="no such file"):
        job.load_rows(tmp_path, "acme", "missing.jsonl", 5, limit=None)
