"""Jurisdiction trees: names -> nodes, scope inference, what a node's search matches."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.events import (
    JurisdictionNode,
    JurisdictionTree,
    RuleScope,
    ancestors_or_self,
)
from shared.language import is_cjk
from shared.memory.jurisdictions import JurisdictionMap, filter_values
from shared.memory.labels import scope_values
from shared.memory.query import RuleFilter


def tree(
    *nodes: str | tuple[str, tuple[str, ...]], default: tuple[str, ...] = ()
) -> JurisdictionTree:
    return JurisdictionTree(
        tenant="acme",
        version=1,
        nodes=tuple(
            JurisdictionNode(path=n)
            if isinstance(n, str)
            else JurisdictionNode(path=n[0], aliases=n[1])
            for n in nodes
        ),
        default_scope=default,
    )


CN = JurisdictionMap.from_tree(
    tree(
        ("CN", ("全国",)),
        ("CN/山东", ("山东省",)),
        ("CN/山东/济南", ("济南市",)),
        ("CN/山东/青岛", ("青岛市",)),
        ("CN/吉林", ("吉林省",)),
        ("CN/吉林/吉林", ("吉林市",)),
        ("CN/北京", ("北京市",)),
        ("CN/北京/朝阳", ()),
        ("CN/辽宁", ()),
        ("CN/辽宁/朝阳", ()),
        "US",
        ("US/CA", ("California",)),
        default=("CN",),
    )
)


def test_ancestors() -> None:
    assert ancestors_or_self("CN/山东/济南") == ("CN", "CN/山东", "CN/山东/济南")
    assert ancestors_or_self("EU") == ("EU",)


@pytest.mark.parametrize(
    ("name", "node"),
    [
        ("CN/山东/济南", "cn/山东/济南"),  # a path
        ("cn/山东/济南", "cn/山东/济南"),
        ("济南", "cn/山东/济南"),  # the last segment
        ("济南市", "cn/山东/济南"),  # an alias
        ("山东济南", "cn/山东/济南"),  # A-Law's compound location
        ("山东省济南市", "cn/山东/济南"),
        ("山东", "cn/山东"),
        ("吉林", "cn/吉林"),  # province and city: the higher one
        ("吉林吉林", "cn/吉林/吉林"),
        ("朝阳", None),  # two unrelated nodes: ambiguous, never a guess
        ("北京朝阳", "cn/北京/朝阳"),
        ("california", "us/ca"),
        ("ＵＳ", "us"),  # full-width, case-folded
        ("济南山东", None),  # a city then its province is no compound
        ("青岛济南", None),  # siblings
        ("湖南", None),
        ("", None),
    ],
)
def test_names_resolve_to_nodes(name: str, node: str | None) -> None:
    assert CN.resolve(name) == node


def test_a_node_sees_its_ancestors_and_global_never_siblings() -> None:
    assert CN.searched(["cn/山东/济南"]) == ("global", "cn", "cn/山东", "cn/山东/济南")
    expression = RuleFilter(tenant="t", jurisdictions=scope_values(["CN/山东/济南"])).expression()
    assert "@jurisdiction:{global | cn | cn\\/山东 | cn\\/山东\\/济南}" in expression
    assert "青岛" not in expression
    assert RuleFilter(tenant="t", jurisdictions=()).expression().endswith("@jurisdiction:{global}")
    assert "@jurisdiction" not in RuleFilter(tenant="t").expression()


def test_scope_from_the_request_then_the_question_then_the_default() -> None:
    asked = CN.scope_for(RuleScope(jurisdictions=("山东济南", "火星")), "北京的规定")
    assert asked.source == "request"
    assert asked.nodes == ("CN/山东/济南",)
    assert asked.searched == ("global", "CN", "CN/山东", "CN/山东/济南")
    assert asked.unresolved == ("火星",)  # reported, not widened
    named = CN.scope_for(RuleScope(), "在青岛市，经营者应当...")
    assert (named.source, named.nodes) == ("question", ("CN/山东/青岛",))
    nothing = CN.scope_for(RuleScope(), "经营者应当如何处理？")
    assert (nothing.source, nothing.searched) == ("default", ("global", "CN"))
    assert CN.scope_for(RuleScope(), "在青岛市", infer=False).source == "default"
    every = CN.scope_for(RuleScope(any_jurisdiction=True), "在青岛市")
    assert every.source == "any"
    assert filter_values(every) is None


def test_an_unplaced_question_searches_the_whole_tree_when_the_tenant_says_so() -> None:
    declared = tree(("CN", ("全国",)), ("CN/山东", ("山东省",)), default=("CN",))
    whole = JurisdictionMap.from_tree(declared.model_copy(update={"unplaced": "tree"}))
    scope = whole.scope_for(RuleScope(), "经营者应当如何处理？")
    assert (scope.source, scope.nodes, scope.searched) == ("tree", (), ())
    assert filter_values(scope) is None  # every rule of the tenant, local ones included
    # a place named in the request or the question still narrows the search
    assert whole.scope_for(RuleScope(), "在山东省，经营者应当").source == "question"
    assert whole.scope_for(RuleScope(jurisdictions=("全国",)), "").searched == ("global", "CN")
    # the policy travels with the tree; the default keeps the default scope
    assert JurisdictionMap.from_tree(declared).scope_for(RuleScope(), "").source == "default"
    with pytest.raises(ValidationError):
        JurisdictionTree.model_validate({**declared.model_dump(), "unplaced": "anywhere"})


def test_without_a_default_a_question_that_names_nothing_sees_global_only() -> None:
    flat = JurisdictionMap.implicit(["EU", "US", "global", "acme/eu-sales"])
    scope = flat.scope_for(RuleScope(), "Can I return shoes after 3 weeks?")
    assert scope.source == "global"
    assert filter_values(scope) == ("global",)
    assert flat.resolve("eu-sales") == "acme/eu-sales"
    assert flat.resolve("acme") == "acme"  # ancestors are nodes too
    assert flat.scope_for(RuleScope(), "What does the EU require?").nodes == ("EU",)


def test_mentions_in_questions() -> None:
    assert CN.mentioned("山东济南的规定") == ("cn/山东", "cn/山东/济南")
    assert CN.mentioned("北京市的限速") == ("cn/北京",)
    assert CN.mentioned("朝阳区的规定") == ()  # ambiguous name
    assert CN.mentioned("in california and the US") == ("us/ca", "us")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("us", True),
        ("rules of the us.", True),
        ("use", False),  # at the start of a longer word
        ("bus", False),  # at the end of a longer word
        ("the user and the us", True),  # a later occurrence is a whole word
        ("US규정", True),  # Hangul, written without spaces
        ("US豈", True),  # a CJK compatibility ideograph
        ("US𠀀", True),  # CJK extension B
        ("USꀀ", False),  # Yi syllables are letters of a spaced script here
        ("在US的规定", True),
    ],
)
def test_latin_names_are_whole_words(text: str, found: bool) -> None:
    flat = JurisdictionMap.implicit(["US"])
    assert flat.mentioned(text) == (("us",) if found else ())


def test_global_is_never_a_node_nor_inferred() -> None:
    flat = JurisdictionMap.implicit(["global", ""])
    assert flat.mentioned("global rules for everyone") == ()
    assert flat.resolve_all(["global"]).nodes == ()


@pytest.mark.parametrize(
    "nodes",
    [
        ("CN", "CN"),  # twice
        ("CN", "cn"),  # twice, another case
        ("CN/山东",),  # parent not declared
        ("global",),
        ("CN", "CN/global"),
        ("/CN",),
        ("CN//x",),
        ("a|b",),
        ("/".join("abcdefghi"),),  # deeper than 8
    ],
)
def test_malformed_trees_are_rejected(nodes: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError):
        JurisdictionTree(tenant="t", version=1,
                         nodes=tuple(JurisdictionNode(path=n) for n in nodes))  # fmt: skip


def test_a_default_scope_must_be_declared() -> None:
    with pytest.raises(ValidationError, match="default scope"):
        tree("CN", default=("US",))
    assert tree("CN", "CN/x", default=("CN/x",)).key == "acme:@jurisdictions"


@pytest.mark.parametrize(
    ("char", "cjk"),
    [("\u2e7f", False), ("\u2e80", True), ("\u9fff", True), ("\ua000", False),
     ("\uabff", False), ("\uac00", True), ("\ud7af", True), ("\ud7b0", False),
     ("\uf8ff", False), ("\uf900", True), ("\ufaff", True), ("\ufb00", False),
     ("\U0001ffff", False), ("\U00020000", True), ("\U0003ffff", True), ("\U00040000", False)],
)  # fmt: skip
def test_cjk_ranges_at_their_bounds(char: str, cjk: bool) -> None:
    assert is_cjk(char) is cjk


# Boundaries of name resolution and mention (each kills mutants bench.mutation found alive).

PLACES = JurisdictionMap.from_tree(
    tree(
        "CN",
        "CN/内蒙古",
        "CN/内蒙古/包头",
        "CN/北京",
        "CN/北京/朝阳",
        "CN/辽宁",
        "CN/辽宁/朝阳",
        "CN/辽宁/朝阳/龙城",
        "CN/河北",
        "CN/河北/石家庄",
        "CN/河北/石家庄/长安",
        "FR",
        "FR/Paris",
        "IT",
        "IT/L'Aquila",
        "NL",
        "NL/'s-Hertogenbosch",
        "US",
        "US/Washington D.C",
        "A",
        "A/Alpha",
        "A/Alpha/X",
    )
)


def test_a_compound_name_takes_its_longest_head_and_stays_under_it() -> None:
    assert PLACES.resolve("内蒙古包头") == "cn/内蒙古/包头"  # the head is longer than the rest
    assert PLACES.resolve("alphax") == "a/alpha/x"  # the rest is one character
    # Three levels: the middle name must be a node under the first (辽宁's 朝阳, not 北京's).
    assert PLACES.resolve("辽宁朝阳龙城") == "cn/辽宁/朝阳/龙城"
    assert PLACES.resolve("河北石家庄长安") == "cn/河北/石家庄/长安"
    assert PLACES.resolve("辽宁石家庄长安") is None


def test_global_is_skipped_wherever_it_stands_and_long_names_are_cut() -> None:
    resolved = PLACES.resolve_all(["global", "FR", "GLOBAL", "zz", "x" * 300])
    assert resolved.nodes == ("fr",)
    assert resolved.unresolved == ("zz", "x" * 255)


def test_global_and_empty_values_never_become_nodes_or_names() -> None:
    implicit = JurisdictionMap.implicit(["global", "", "EU"])
    assert set(implicit.paths) == {"eu"}
    assert implicit.version == 0
    built = JurisdictionMap.build({"EU": ("global", "")}, ())
    assert built.resolve("global") is None
    assert built.mentioned("global rules, EU rules") == ("eu",)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("paris is nice", ("fr/paris",)),  # at the very start
        ("xparis", ()),  # inside a word
        ("xparis and paris", ("fr/paris",)),  # a word-internal hit does not end the search
        ("near l'aquila today", ("it/l'aquila",)),
        ("near l'aquilano today", ()),
        ("to 's-hertogenbosch.", ("nl/'s-hertogenbosch",)),
        ("to 's-hertogenboschx", ()),
        ("in washington d.c now", ("us/washington d.c",)),
        ("in washington d.cx now", ()),
    ],
)
def test_a_latin_name_is_mentioned_only_as_a_whole_word(text: str, found: tuple[str, ...]) -> None:
    assert PLACES.mentioned(text) == found


def test_an_empty_search_scope_still_matches_global() -> None:
    scope = JurisdictionMap.build({}, ()).scope_for(RuleScope(), "nothing named")
    assert filter_values(scope.model_copy(update={"searched": ()})) == ("global",)
