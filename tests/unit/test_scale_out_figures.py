"""The scale-out figures docs/operations.md quotes are the ones bench/scale_out.py wrote
(bench/results/scale_out.json), and the correctness ones are zero."""

from __future__ import annotations

import json
import re

from tests.unit.chart import ROOT

DOC = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
RESULT = json.loads((ROOT / "bench" / "results" / "scale_out.json").read_text())
KEYS = ("duplicate_generations_scale_up", "duplicate_generations_scale_up_baseline",
        "lost_requests", "rebalance_pause_p99_ms", "rebalance_pause_p99_ms_static",
        "stale_own_edit", "broker_kill_lost")  # fmt: skip


def test_the_operations_doc_quotes_each_measured_figure() -> None:
    for key in KEYS:
        quoted = re.search(rf"^\| `{key}` \| (\d+) \|", DOC, re.MULTILINE)
        assert quoted is not None, key
        assert int(quoted.group(1)) == round(RESULT[key]), key


def test_nothing_is_lost_or_done_twice_when_instances_come_and_go() -> None:
    for key in ("duplicate_generations_scale_up", "lost_requests", "stale_own_edit",
                "broker_kill_lost"):  # fmt: skip
        assert RESULT[key] == 0, key
    assert RESULT["duplicate_generations_scale_up_baseline"] > 0  # the run could show them
