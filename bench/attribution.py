"""Attribution precision and recall on the committed labelled set (``bench/data/
attribution_labelled.jsonl``: answer/rule pairs, each labelled whether the answer follows the
rule; answers that contradict their rule included), for the ``support`` method of
``shared/attribution.py`` and for the floor that cites every rule it was given.

Writes the attribution keys of ``bench/results/change_sets.json`` (other keys of that file,
from the change-set benchmarks, are kept).

    python -m bench.attribution
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import merge_result
from shared.attribution import CITE_AT, KEY_TERMS, attribution_score

LABELLED = Path(__file__).parent / "data" / "attribution_labelled.jsonl"


def scores(cited: list[bool], follows: list[bool]) -> dict[str, float]:
    hits = sum(c and f for c, f in zip(cited, follows, strict=True))
    return {"precision": round(hits / max(sum(cited), 1), 4),
            "recall": round(hits / max(sum(follows), 1), 4)}  # fmt: skip


def main() -> None:
    rows = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    follows = [bool(r["follows"]) for r in rows]
    cited = [attribution_score(r["answer"], r["rule"]) >= CITE_AT for r in rows]
    method, floor = scores(cited, follows), scores([True] * len(rows), follows)
    wrong = [r["id"] for r, c, f in zip(rows, cited, follows, strict=True) if c != f]
    contradictions = [c for r, c in zip(rows, cited, strict=True) if r["kind"] == "contradicts"]
    merge_result("change_sets", ("attribution", "cite_all"), {
        "attribution_method": f"support (shared/attribution.py): cite at score >= {CITE_AT}, "
                              f"{KEY_TERMS} key terms, amounts of time checked",
        "attribution_pairs": len(rows),
        "attribution_precision": method["precision"],
        "attribution_recall": method["recall"],
        "cite_all_precision": floor["precision"],
        "cite_all_recall": floor["recall"],
        "attribution_contradictions_cited": f"{sum(contradictions)}/{len(contradictions)}",
        "attribution_errors": wrong,
    })  # fmt: skip


if __name__ == "__main__":
    main()
