"""The newcomer's figures the README quotes are the ones bench/newcomer.py measured and wrote
(bench/results/newcomer.json), and they meet their targets."""

from __future__ import annotations

import json
import re

from tests.unit.chart import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULT = json.loads((ROOT / "bench" / "results" / "newcomer.json").read_text())


def test_the_quick_start_quotes_the_measured_times() -> None:
    bootstrap = re.search(r"(\d+) s on a fresh clone, 2 cores, pip's cache warm", README)
    demo = re.search(r"The demo \((\d+) s on a fresh clone, 2 cores", README)
    assert bootstrap is not None
    assert demo is not None
    assert int(bootstrap.group(1)) == round(RESULT["bootstrap_s"])
    assert int(demo.group(1)) == round(RESULT["demo_s"])
    run, total = RESULT["readme_examples_run"], RESULT["readme_examples_total"]
    assert f"the {total}\nREADME examples" in README or f"the {total} README examples" in README
    assert f"{run} of {total} run" in README


def test_the_newcomer_targets_hold() -> None:
    assert RESULT["demo_s"] <= RESULT["demo_target_s"]
    assert RESULT["readme_examples_run"] == RESULT["readme_examples_total"] > 0
    assert RESULT["demo_nonempty_answers"] == RESULT["demo_answers"] > 0
    assert RESULT["readme_examples_failed"] == []
