"""The retrieval figures docs/grounding.md quotes are the ones bench/retrieval_quality.py
measured and wrote (bench/results/retrieval_quality.json)."""

from __future__ import annotations

import json

from tests.unit.chart import ROOT

DOC = (ROOT / "docs" / "grounding.md").read_text(encoding="utf-8")
RESULT = json.loads((ROOT / "bench" / "results" / "retrieval_quality.json").read_text())
METHODS = {
    "product": "product (hybrid, scoped)",
    "vector": "vector only (HNSW)",
    "lexical": "lexical only (BM25)",
    "exact": "exact cosine (numpy)",
}
VARIANTS = ("full", "stem", "no_scope", "no_place")


def cell(figures: dict[str, float]) -> str:
    return " / ".join(f"{figures[k]:.3f}" for k in ("hit_at_1", "hit_at_5", "hit_in_budget"))


def table_row(
    label: str, by_variant: dict[str, dict[str, float]], variants: tuple[str, ...]
) -> str:
    return f"| {label} | " + " | ".join(cell(by_variant[v]) for v in variants) + " |"


def test_every_quoted_row_is_the_measured_one() -> None:
    for method, label in METHODS.items():
        row = table_row(label, RESULT["methods"][method], VARIANTS)
        assert row in DOC, row
    morality = RESULT["methods"]["product_morality"]
    assert table_row("product, professional morality", morality, ("full", "stem")) in DOC


def test_the_headline_figures_are_the_measured_ones() -> None:
    halves = RESULT["product_hit_at_1_stem_halves"]
    quoted = [
        f"Stem-only hit@1 {RESULT['product_hit_at_1_stem']:.3f}",
        f"even questions {halves['even']:.3f}, odd {halves['odd']:.3f}",
        f"all reaches the prompt for {RESULT['no_place_hit_in_budget']:.3f}",
        f"national scope only {RESULT['no_place_hit_in_budget_national_only']:.3f}",
        f"in the budget {RESULT['morality_hit_in_budget']:.3f}",
        f"every organization {RESULT['morality_hit_in_budget_any_domain']:.3f}",
    ]
    for text in quoted:
        assert text in DOC, text
    assert RESULT["unplaced_policy"] == "tree"
