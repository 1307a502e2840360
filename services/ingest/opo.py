"""Turn OPO rule corpora (``law_principles.jsonl``, ``morality_principles.jsonl``) into rules.

A principle looks like ``<law name>规定:<第X条:text> <第Y条:text>``; each article becomes one
rule with the law's name as title and the row's ``location`` as jurisdiction (empty: national,
i.e. ``global``). A location that starts with a province name (``山东青岛``) is filed under the
province, with the city as a tag, because OPO filters law rules by province.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.events import GLOBAL_JURISDICTION, Rule, RuleDomain

_HEADER = re.compile(r"^\s*(?P<law>.+?)规定[:：]\s*")
_ARTICLE = re.compile(r"<\s*(?P<article>第[^:：<>]{1,16}条)[:：]")
_UNSAFE_ID = re.compile(r"[^\w.:\-]+")


def split_principle(principle: str) -> tuple[str, list[tuple[str, str]]]:
    """(law name, [(article, text), ...]) of one OPO principle string."""
    header = _HEADER.match(principle)
    if header is None:
        return "", [("", principle.strip())]
    law = header.group("law").strip()
    body = principle[header.end() :]
    marks = list(_ARTICLE.finditer(body))
    articles = []
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(body)
        text = body[mark.end() : end].strip().removesuffix(">").strip()
        if text:
            articles.append((mark.group("article"), text))
    return law, articles


def rule_id_for(law: str, article: str) -> str:
    return _UNSAFE_ID.sub("_", f"{law}:{article}" if article else law).strip("_")[:128]


def split_location(location: str, provinces: Iterable[str]) -> tuple[str, tuple[str, ...]]:
    """(jurisdiction, tags) of an OPO location."""
    location = location.strip()
    if not location or location == "全国":
        return GLOBAL_JURISDICTION, ()
    for province in sorted(provinces, key=len, reverse=True):
        if location.startswith(province) and location != province:
            return province, (location[len(province) :],)
    return location, ()


def opo_rules(
    rows: Iterable[dict[str, str]],
    *,
    tenant: str,
    domain: RuleDomain,
    version: int = 1,
    provinces: Iterable[str] = (),
    locale: str = "zh-CN",
) -> Iterator[Rule]:
    """One rule per article; the same article seen twice is emitted once."""
    seen: set[str] = set()
    province_list = [p for p in provinces if p != "全国"]
    for row in rows:
        law, articles = split_principle(row["principle"])
        jurisdiction, tags = split_location(row.get("location", ""), province_list)
        for article, text in articles:
            rule_id = rule_id_for(law, article)
            if not rule_id or rule_id in seen:
                continue
            seen.add(rule_id)
            yield Rule(
                tenant=tenant,
                rule_id=rule_id,
                version=version,
                domain=domain,
                jurisdiction=jurisdiction,
                locale=locale,
                title=f"{law} {article}".strip(),
                source="OPO",
                text=text[:8000],
                tags=tags,
            )


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_provinces(path: Path | None) -> list[str]:
    """Province names from OPO's ``province2laws.json`` (its keys), if given."""
    if path is None or not path.exists():
        return []
    return list(json.loads(path.read_text(encoding="utf-8")))
