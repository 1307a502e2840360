"""OPO's rule corpora (``law_principles.jsonl``, ``morality_principles.jsonl``) as rules, for
``rules import-opo``, OPO's exam protocol and the benchmarks.

A principle looks like ``<law name>规定:<第X条:text> <第Y条:text>``; each article becomes one
rule with the law's name as title. ``province2laws.json`` (national laws, then each province's
cities) becomes the tenant's jurisdiction tree: ``CN`` (national law; the default scope),
``CN/山东``, ``CN/山东/济南``, with the names questions use (山东省, 济南市, 内蒙古自治区), and
the organizations of the morality corpus as nodes of their own (``Vertiv公司``). A
row's ``location`` (``山东济南``, ``河北``, empty for national) resolves to its node, so a
question about a city sees the city's, the province's and the national laws.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from shared.events import (
    GLOBAL_JURISDICTION,
    JurisdictionNode,
    JurisdictionTree,
    Rule,
    RuleDomain,
)
from shared.memory.jurisdictions import JurisdictionMap

_HEADER = re.compile(r"^\s*(?P<law>.+?)规定[:：]\s*")
_ARTICLE = re.compile(r"<\s*(?P<article>第[^:：<>]{1,16}条)[:：]")
_UNSAFE_ID = re.compile(r"[^\w.:\-]+")
_ORGANIZATION = re.compile(r"[^/|\s][^/|]{0,127}")


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


NATIONAL = "全国"
_FULL_NAMES = {
    "内蒙古": ("内蒙古自治区",),
    "广西": ("广西壮族自治区",),
    "宁夏": ("宁夏回族自治区",),
    "新疆": ("新疆维吾尔自治区",),
    "西藏": ("西藏自治区",),
    "北京": ("北京市",),
    "上海": ("上海市",),
    "天津": ("天津市",),
    "重庆": ("重庆市",),
}
_PROVINCE_LEVEL = "省直"
"""OPO's key for a province's own laws (not a city)."""
_ADMIN_SUFFIXES = ("市", "县", "区", "州", "盟", "旗")


def _city_aliases(city: str) -> tuple[str, ...]:
    return () if city.endswith(_ADMIN_SUFFIXES) else (city + "市",)


def opo_tree(
    province2laws: Mapping[str, object],
    *,
    tenant: str,
    version: int = 1,
    country: str = "CN",
    unplaced: Literal["default", "tree"] = "tree",
    organizations: Iterable[str] = (),
) -> JurisdictionTree:
    """The jurisdiction tree of OPO's ``province2laws.json``; the country is the default scope.
    A question that names no place searches the whole tree by default (``unplaced``): under
    the national scope alone every local law is out of its reach (measured on A-Law with the
    places taken out: ``bench.retrieval_quality``, ``no_place``)."""
    nodes = [JurisdictionNode(path=country, aliases=(NATIONAL, "中国"))]
    for province, cities in province2laws.items():
        if province == NATIONAL:
            continue
        aliases = _FULL_NAMES.get(province, (province + "省",))
        nodes.append(JurisdictionNode(path=f"{country}/{province}", aliases=aliases))
        for city in cities if isinstance(cities, dict) else ():
            if city != _PROVINCE_LEVEL and city != province:
                nodes.append(
                    JurisdictionNode(
                        path=f"{country}/{province}/{city}", aliases=_city_aliases(city)
                    )
                )
    # A company's or an association's code of conduct applies within it, as a province's law
    # does there: each is a node of its own beside the country (a question that names it
    # searches its principles).
    known = {node.path.casefold() for node in nodes}
    for name in dict.fromkeys(o.strip() for o in organizations):
        if name and name.casefold() not in known and _ORGANIZATION.fullmatch(name):
            known.add(name.casefold())
            nodes.append(JurisdictionNode(path=name))
    return JurisdictionTree(tenant=tenant, version=version, nodes=tuple(nodes),
                            default_scope=(country,), unplaced=unplaced)  # fmt: skip


def organizations_of(rows: Iterable[dict[str, str]]) -> list[str]:
    """The organizations of OPO's morality corpus (its ``location`` column: ``Vertiv公司``)."""
    return sorted({row.get("location", "").strip() for row in rows} - {"", NATIONAL})


def split_location(
    location: str, tree: JurisdictionMap | None, country: str = "CN"
) -> tuple[str, tuple[str, ...]]:
    """(jurisdiction, tags) of an OPO location: its node in the tree (national law: the
    country); without a tree, the location itself (national: ``global``). A location the tree
    does not know is kept as given, as a tag too, and reported by the caller."""
    location = location.strip()
    if not location or location == NATIONAL:
        return (country if tree is not None else GLOBAL_JURISDICTION), ()
    if tree is None:
        return location, ()
    node = tree.resolve(location)
    return (tree.display(node), ()) if node is not None else (location, (location,))


def opo_rules(
    rows: Iterable[dict[str, str]],
    *,
    tenant: str,
    domain: RuleDomain,
    version: int = 1,
    tree: JurisdictionMap | None = None,
    country: str = "CN",
    locale: str = "zh-CN",
) -> Iterator[Rule]:
    """One rule per article; the same article seen twice is emitted once."""
    seen: set[str] = set()
    for row in rows:
        law, articles = split_principle(row["principle"])
        jurisdiction, tags = split_location(row.get("location", ""), tree, country)
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
                title=f"{law}{article}",
                source="OPO",
                text=text[:8000],
                tags=tags,
            )


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_province2laws(path: Path) -> dict[str, object]:
    """OPO's ``province2laws.json``: ``{"全国": [laws], province: {city: [laws]}}``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of provinces")
    return data
