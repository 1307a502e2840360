"""Scopes and hybrid retrieval on the real broker, ingest, Redis and retrieval: a node sees its
ancestors and global, never its siblings; a question that names nothing sees the default
scope; full text and vectors are fused; an A-Law city question reaches its governing article."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from services.grading.asking import exam_request
from services.grading.datasets import load_exam
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.events import RulesTopicEvent
from shared.memory.jurisdictions import JurisdictionMap
from shared.opo import (
    opo_rules,
    opo_tree,
    read_jsonl,
    read_province2laws,
    rule_id_for,
    split_principle,
)
from shared.topics import CHAT_RESPONSES
from tests.integration.helpers import alignstream_cli
from tests.samples import sample_rule

OPO_DATA = Path(__file__).parents[3] / "shared" / "data" / "opo"
LAW = events.RuleDomain.LAW
EBIKE = "驾驶电动自行车不得搭载十二周岁以上的人员，搭载儿童应当使用安全座椅。"


def ask(tenant: str, text: str, **scope: object) -> events.ChatRequest:
    return events.ChatRequest(
        tenant=tenant,
        messages=(events.ChatMessage(role=events.Role.USER, content=text),),
        scope=events.RuleScope.model_validate({"top_k": 10, **scope}),
    )


async def publish(client: AlignstreamClient, batch: Sequence[RulesTopicEvent]) -> None:
    confirmations = await client.publish_rules(batch, wait=True, timeout_s=60)
    assert all(c.outcome is events.IndexOutcome.APPLIED for c in confirmations)


def tree(tenant: str, version: int = 1, **fields: object) -> events.JurisdictionTree:
    nodes = [
        {"path": "CN", "aliases": ["全国"]},
        {"path": "CN/山东", "aliases": ["山东省"]},
        {"path": "CN/山东/济南", "aliases": ["济南市"]},
        {"path": "CN/山东/青岛", "aliases": ["青岛市"]},
    ]
    return events.JurisdictionTree.model_validate(
        {"tenant": tenant, "version": version, "nodes": nodes, "default_scope": ["CN"], **fields}
    )


async def test_a_node_sees_its_ancestors_and_global_never_siblings(
    ingest: IngestService, retrieval: RetrievalService
) -> None:
    rules = [
        sample_rule(rule_id=name, domain=LAW, jurisdiction=where, text=f"{EBIKE}（{name}）")
        for name, where in [("everywhere", "global"), ("national", "CN"),
                            ("province", "CN/山东"), ("jinan", "CN/山东/济南"),
                            ("qingdao", "CN/山东/青岛")]
    ]  # fmt: skip
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        await publish(client, [tree("acme"), *(events.RuleUpsert(rule=r) for r in rules)])
        city = ask("acme", "骑电动自行车可以带孩子吗？", jurisdictions=["济南市"])
        sibling = ask("acme", "在青岛市骑电动自行车可以带孩子吗？")
        nothing = ask("acme", "骑电动自行车可以带孩子吗？")
        unknown = ask("acme", "骑电动自行车可以带孩子吗？", jurisdictions=["火星"])
        every = ask("acme", "骑电动自行车可以带孩子吗？", any_jurisdiction=True)
        grounded = await client.ground([city, sibling, nothing, unknown, every])

    def seen(request: events.ChatRequest) -> set[str]:
        return {r.rule_id for r in grounded[request.request_id].rules}

    assert seen(city) == {"everywhere", "national", "province", "jinan"}
    assert seen(sibling) == {"everywhere", "national", "province", "qingdao"}
    assert seen(nothing) == {"everywhere", "national"}  # the default scope, never all regions
    assert seen(unknown) == {"everywhere"}  # not widened
    assert seen(every) == {"everywhere", "national", "province", "jinan", "qingdao"}
    named = {"city": city, "sibling": sibling, "nothing": nothing, "unknown": unknown}
    scopes = {name: grounded[r.request_id].searched_scope for name, r in named.items()}
    assert scopes["city"] == events.SearchedScope(
        source="request", nodes=("CN/山东/济南",),
        searched=("global", "CN", "CN/山东", "CN/山东/济南"),
    )  # fmt: skip
    assert scopes["sibling"] is not None
    assert scopes["sibling"].source == "question"
    assert scopes["nothing"] is not None
    assert scopes["nothing"].source == "default"
    assert scopes["unknown"] is not None
    assert scopes["unknown"].unresolved == ("火星",)


async def test_an_older_tree_changes_nothing_and_a_newer_one_replaces_it(
    ingest: IngestService, retrieval: RetrievalService
) -> None:
    retrieval.settings.jurisdictions_refresh_s = 0.0
    national = sample_rule(rule_id="national", domain=LAW, jurisdiction="CN", text=EBIKE)
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        await publish(client, [tree("acme", 2), events.RuleUpsert(rule=national)])
        older = await client.publish_rules([tree("acme", 1, default_scope=[])], wait=True)
        assert [c.outcome for c in older] == [events.IndexOutcome.STALE]
        assert (older[0].op, older[0].rule_id) == ("tree", events.TREE_RULE_ID)
        before = await client.ground([ask("acme", "电动自行车")])
        await publish(client, [tree("acme", 3, default_scope=[])])
        assert retrieval.retriever is not None
        retrieval.retriever._maps = type(retrieval.retriever._maps)(
            retrieval.retriever._read_map, 0.0
        )
        after = await client.ground([ask("acme", "电动自行车")])
    assert [r.rule_id for g in before.values() for r in g.rules] == ["national"]
    assert [r.rule_id for g in after.values() for r in g.rules] == []  # global only now


async def test_a_tenant_without_a_tree_sees_global_plus_the_regions_it_names(
    ingest: IngestService, retrieval: RetrievalService
) -> None:
    rules = [
        sample_rule(rule_id="returns", jurisdiction="EU",
                    text="Customers may return shoes within 30 days of delivery."),
        sample_rule(rule_id="returns-us", jurisdiction="US",
                    text="Customers may return shoes within 14 days of delivery."),
        sample_rule(rule_id="receipts", jurisdiction="global",
                    text="Every return needs the receipt."),
    ]  # fmt: skip
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        await publish(client, [events.RuleUpsert(rule=r) for r in rules])
        plain = ask("acme", "Can I return shoes after 3 weeks?")
        in_eu = ask("acme", "Can I return shoes after 3 weeks in the EU?")
        grounded = await client.ground([plain, in_eu])
    assert {r.rule_id for r in grounded[plain.request_id].rules} == {"receipts"}
    assert {r.rule_id for r in grounded[in_eu.request_id].rules} == {"receipts", "returns"}


async def test_full_text_and_vectors_are_fused_in_zh_and_en(
    ingest: IngestService, retrieval: RetrievalService
) -> None:
    texts = {
        "ebike": EBIKE,
        "seatbelt": "机动车行驶时，驾驶人、乘坐人员应当按规定使用安全带。",
        "noise": "在居民区内，禁止在夜间进行产生环境噪声污染的建筑施工作业。",
        "smoking": "公共场所室内区域禁止吸烟，经营者应当设置明显的禁烟标识。",
        "returns": "Customers may return running shoes within 30 days of delivery for a refund.",
        "privacy": "Never disclose a customer's email address to third parties.",
        "w8": "Suppliers outside the US must file form W-8BEN before their first invoice.",
        "travel": "Business travel must be booked through the company portal.",
    }
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        upserts = [events.RuleUpsert(rule=sample_rule(rule_id=k, text=v, jurisdiction="global"))
                   for k, v in texts.items()]  # fmt: skip
        await publish(client, upserts)
        questions = {
            "ebike": ask("acme", "骑电动自行车可以带孩子吗？"),
            "seatbelt": ask("acme", "坐车一定要系安全带吗"),
            "returns": ask("acme", "Is returning shoes allowed?"),  # stems: returning -> return
            "w8": ask("acme", "Which suppliers need a W-8BEN?"),
        }
        grounded = await client.ground(list(questions.values()))
    for expected, request in questions.items():
        first = grounded[request.request_id].rules[0]
        assert first.rule_id == expected
        assert first.lexical_rank == 1, expected
        assert first.vector_rank is not None
        assert 0 < first.score <= 1  # the cosine, also for full-text hits


@pytest.mark.skipif(not (OPO_DATA / "a_law.csv").exists(), reason="../shared/data/opo is absent")
async def test_an_a_law_city_question_reaches_its_governing_article(
    ingest: IngestService, retrieval: RetrievalService, tmp_path: Path
) -> None:
    exam_rows = list(csv.DictReader((OPO_DATA / "a_law.csv").open(encoding="utf-8")))
    row = next(r for r in exam_rows if r["location"] == "山东济南")
    law, articles = split_principle(row["principle"])
    governing = {rule_id_for(law, article) for article, _ in articles}
    # The city's laws, the province's, and national law (a sample): ~100 rules, seconds.
    rows = read_jsonl(OPO_DATA / "law_principles.jsonl")
    national = [r for r in rows if r["location"] == ""][::4]
    corpus = [r for r in rows if r["location"].startswith("山东")] + national
    jurisdictions = opo_tree(read_province2laws(OPO_DATA / "province2laws.json"), tenant="opo")
    rules = list(opo_rules(corpus, tenant="opo", domain=LAW,
                           tree=JurisdictionMap.from_tree(jurisdictions)))  # fmt: skip
    assert governing <= {r.rule_id for r in rules}
    exam_file = tmp_path / "one.csv"
    with exam_file.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    (question,) = load_exam(exam_file).questions
    job = events.ExamJob(tenant="opo", dataset=str(exam_file))
    request = exam_request(
        job,
        question,
        events.Strategy.OPO,
        reply_topic=retrieval.topics(CHAT_RESPONSES),
        nonce="n",
    )
    async with AlignstreamClient(retrieval.settings.kafka) as client:
        await publish(client, [jurisdictions, *(events.RuleUpsert(rule=r) for r in rules)])
        grounded = await client.ground([request])
    found = grounded[request.request_id]
    assert governing & {r.rule_id for r in found.rules}, json.dumps(
        [r.rule_id for r in found.rules], ensure_ascii=False
    )
    assert found.searched_scope is not None
    assert "CN/山东/济南" in found.searched_scope.searched


async def test_the_cli_declares_shows_and_searches_under_a_tree(
    ingest: IngestService, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tree_file = tmp_path / "tree.json"
    tree_file.write_text(
        json.dumps({"nodes": ["CN", {"path": "CN/山东", "aliases": ["山东省"]},
                              {"path": "CN/山东/青岛", "aliases": ["青岛市"]}],
                    "default_scope": ["CN"]}, ensure_ascii=False),
        encoding="utf-8",
    )  # fmt: skip
    code, output = await alignstream_cli(
        cli_env, "jurisdictions", "publish", str(tree_file), "--tenant", "acme", "--wait"
    )
    assert code == 0, output
    assert "3 nodes" in output
    code, output = await alignstream_cli(cli_env, "jurisdictions", "show", "--tenant", "acme")
    assert code == 0, output
    assert "CN/山东/青岛" in output
    assert "青岛市" in output
    rules = [sample_rule(rule_id="qingdao", jurisdiction="CN/山东/青岛", text=EBIKE),
             sample_rule(rule_id="national", jurisdiction="CN", text=EBIKE + "全国")]  # fmt: skip
    async with AlignstreamClient(ingest.settings.kafka) as client:
        await publish(client, [events.RuleUpsert(rule=r) for r in rules])
    code, output = await alignstream_cli(
        cli_env, "rules", "search", "在青岛市骑电动自行车可以带孩子吗", "--tenant", "acme",
        "--explain",
    )  # fmt: skip
    assert code == 0, output
    assert "scope (question): global, CN, CN/山东, CN/山东/青岛" in output
    assert "qingdao" in output
    assert "lexical #" in output
    code, output = await alignstream_cli(
        cli_env, "rules", "search", "骑电动自行车", "--tenant", "acme", "--jurisdiction", "火星"
    )
    assert code == 0, output
    assert "not in the tenant's tree: 火星" in " ".join(output.split())
    assert "qingdao" not in output
    assert "national" not in output
