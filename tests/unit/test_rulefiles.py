"""Rule files and the OPO corpus importer (pure)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from shared import events
from shared.memory.jurisdictions import JurisdictionMap
from shared.opo import (
    opo_rules,
    opo_tree,
    organizations_of,
    rule_id_for,
    split_location,
    split_principle,
)
from shared.rulefiles import read_rule_file

FIXTURES = Path(__file__).parent.parent / "fixtures"


def test_jsonl_with_rules_and_events() -> None:
    parsed = read_rule_file(FIXTURES / "rules_mixed.jsonl", tenant="acme")
    assert parsed.errors == []
    upsert, delete, speed, privacy = parsed.events
    assert isinstance(upsert, events.RuleUpsert)
    assert (upsert.rule.tenant, upsert.rule.rule_id, upsert.rule.version) == ("acme", "refunds", 2)
    assert isinstance(delete, events.RuleDelete)
    assert (delete.tenant, delete.version) == ("acme", 7)
    assert isinstance(speed, events.RuleUpsert)
    assert speed.rule.jurisdiction == "北京市"
    assert speed.rule.version > 1_600_000_000_000  # defaulted to the time in ms
    assert isinstance(privacy, events.RuleUpsert)
    assert privacy.rule.tenant == "other"  # a row's own tenant wins


def test_errors_name_their_lines() -> None:
    parsed = read_rule_file(FIXTURES / "rules_bad.jsonl", tenant="acme")
    assert len(parsed.events) == 1
    assert [e.line for e in parsed.errors] == [2, 3, 4, 5]
    assert "text" in parsed.errors[0].message
    assert "invalid JSON" in parsed.errors[1].message
    assert "JSON object" in parsed.errors[2].message
    assert "before effective_from" in parsed.errors[3].message
    assert str(parsed.errors[0]).startswith("line 2: ")


def test_rows_without_tenant_and_no_default_are_errors() -> None:
    parsed = read_rule_file(FIXTURES / "rules_mixed.jsonl")
    assert [e.line for e in parsed.errors] == [1, 2, 3]


def test_csv_rows() -> None:
    parsed = read_rule_file(FIXTURES / "rules.csv", tenant="acme")
    assert parsed.errors == []
    first, second = (e.rule for e in parsed.events if isinstance(e, events.RuleUpsert))
    assert first.tags == ("vat", "eu")
    assert first.effective_from == date(2024, 1, 1)
    assert (first.priority, first.version, first.domain) == (5, 3, events.RuleDomain.LAW)
    assert second.text == "Invoices must be kept, for ten years."
    assert second.jurisdiction == events.GLOBAL_JURISDICTION
    assert [e.line for e in read_rule_file(FIXTURES / "rules.csv").errors] == [2, 3]


PRINCIPLE = (
    "北京市道路交通安全条例规定:<第一条:为了维护道路交通秩序，制定本条例。> "
    "<第十二条:机动车应当<按规定>行驶。>"
)


def test_split_principle_into_articles() -> None:
    law, articles = split_principle(PRINCIPLE)
    assert law == "北京市道路交通安全条例"
    assert articles == [
        ("第一条", "为了维护道路交通秩序，制定本条例。"),
        ("第十二条", "机动车应当<按规定>行驶。"),
    ]


def test_principle_without_header_is_one_rule() -> None:
    assert split_principle("Be kind.") == ("", [("", "Be kind.")])


def test_locations_resolve_to_nodes_of_the_tree() -> None:
    provinces = {"全国": ["宪法"], "山东": {"省直": ["a"], "青岛": ["b"]}, "北京": {}, "内蒙古": {}}
    tree = JurisdictionMap.from_tree(opo_tree(provinces, tenant="opo"))
    assert split_location("", tree) == ("CN", ())
    assert split_location("全国", tree) == ("CN", ())
    assert split_location("山东青岛", tree) == ("CN/山东/青岛", ())
    assert split_location("北京", tree) == ("CN/北京", ())
    assert split_location("内蒙古自治区", tree) == ("CN/内蒙古", ())
    assert split_location("复星医药公司", tree) == ("复星医药公司", ("复星医药公司",))
    assert split_location("", None) == ("global", ())
    assert split_location("山东青岛", None) == ("山东青岛", ())


def test_opo_tree_names_provinces_and_cities() -> None:
    provinces = {"全国": ["宪法"], "山东": {"省直": ["a"], "青岛": ["b"], "长岛县": ["c"]}}
    built = opo_tree(provinces, tenant="opo")
    assert [n.path for n in built.nodes] == ["CN", "CN/山东", "CN/山东/青岛", "CN/山东/长岛县"]
    assert built.nodes[1].aliases == ("山东省",)
    assert built.nodes[2].aliases == ("青岛市",)
    assert built.nodes[3].aliases == ()
    assert built.default_scope == ("CN",)
    assert built.unplaced == "tree"  # a question with no place: the whole tree, said so


def test_organizations_are_nodes_a_morality_question_names() -> None:
    rows = [{"principle": "p", "location": "Vertiv公司"}, {"principle": "p", "location": ""},
            {"principle": "p", "location": "S&P Global公司"}, {"principle": "p", "location": "cn"},
            {"principle": "p", "location": "a/b"}]  # fmt: skip
    assert organizations_of(rows) == ["S&P Global公司", "Vertiv公司", "a/b", "cn"]
    built = opo_tree({"全国": []}, tenant="opo", organizations=organizations_of(rows))
    # a name that is already a node (any case) or cannot be a path is left out
    assert [n.path for n in built.nodes] == ["CN", "S&P Global公司", "Vertiv公司"]
    places = JurisdictionMap.from_tree(built)
    assert split_location("Vertiv公司", places) == ("Vertiv公司", ())
    assert places.mentioned("根据Vertiv公司的道德规范，小张应该") == ("vertiv公司",)


def test_opo_rules_one_per_article_without_duplicates() -> None:
    rows = [{"principle": PRINCIPLE, "location": "北京"}, {"principle": PRINCIPLE, "location": ""}]
    tree = JurisdictionMap.from_tree(opo_tree({"北京": {}}, tenant="opo"))
    rules = list(opo_rules(rows, tenant="opo", domain=events.RuleDomain.LAW, tree=tree))
    assert [r.rule_id for r in rules] == [
        "北京市道路交通安全条例:第一条",
        "北京市道路交通安全条例:第十二条",
    ]
    assert rules[0].title == "北京市道路交通安全条例第一条"  # as OPO names its articles
    assert {r.jurisdiction for r in rules} == {"CN/北京"}
    assert rule_id_for("法（2020修正）", "第1条") == "法_2020修正_:第1条"
