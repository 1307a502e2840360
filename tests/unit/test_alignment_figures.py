"""The alignment-effect figures docs/grounding.md quotes are the ones bench/alignment_effect.py
measured and wrote (bench/results/alignment_effect.json)."""

from __future__ import annotations

import json

from tests.unit.chart import ROOT

DOC = (ROOT / "docs" / "grounding.md").read_text(encoding="utf-8")
RESULT = json.loads((ROOT / "bench" / "results" / "alignment_effect.json").read_text())
NAMES = {"smollm2": "SmolLM2-135M-Instruct", "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B-Instruct"}
EXAMS = {"a_law": "A-Law", "a_professional_morality": "A-Prof (sample)"}


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def test_every_quoted_row_is_the_measured_one() -> None:
    rows = 0
    for model, graded in RESULT["models"].items():
        for exam, figures in graded["logprobs"].items():
            accuracies = " | ".join(
                percent(figures[f"{arm}_accuracy"]) for arm in ("base", "opo", "oracle")
            )
            row = f"| {NAMES[model]} | {EXAMS[exam]} | {accuracies} |"
            assert row in DOC, row
            low, high = figures["opo_minus_base_ci_pp"]
            assert f"({low:+.1f}, {high:+.1f}), {figures['mcnemar_p']:.3g}".replace("-", "−") in DOC
            rows += 1
    assert rows == 4
    assert all(f["questions"] == RESULT["limit_per_exam"]
               for g in RESULT["models"].values() for f in g["logprobs"].values())  # fmt: skip
