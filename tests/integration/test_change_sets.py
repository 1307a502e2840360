"""Change sets end to end on the real stack: stage (CLI) -> diff -> exam of live and candidate
memory in one job -> a gate that refuses (nothing changes) -> a gate that passes -> promoted,
the next request grounded in the new version, its history recorded; and kill -9 of ingest
during promotes, repeated: the tenant's memory is always fully old or fully new."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.audit_log import read_audit_log
from shared.client import AlignstreamClient
from shared.memory.changesets import ChangeSetStore
from shared.memory.history import RuleHistory
from shared.memory.keys import RuleKeys
from shared.memory.reader import RuleReader
from shared.settings import KafkaSettings
from shared.testing.backends import ScriptedBackend
from shared.topics import AUDIT_ENTRIES
from tests.integration.helpers import FastModel, ServiceProcess, alignstream_cli, service_env
from tests.samples import sample_rule

LIVE_TEXT = "Customers may return a product within 14 days of delivery."
STAGED_TEXT = "Customers may return a product within 30 days of delivery."


class FollowsItsRules(ScriptedBackend):
    """B (30 days) when the prompt's rules say "within 30 days", else A."""

    model = "follows-its-rules"

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        text = "The answer is (B)." if "within 30" in request.messages[-1]["content"] else "A"
        return GenerationOutput(text=text, finish_reason="stop", prompt_tokens=9,
                                completion_tokens=5, ttft_ms=1.0)  # fmt: skip


def write_exam(path: Path, questions: int) -> Path:
    with path.open("w") as out:
        for i in range(questions):
            question = f"How long may a customer return product {i}?"
            out.write(json.dumps({"id": f"returns-{i}", "category": f"c{i % 2}",
                                  "question": question, "options": ["14 days", "30 days"],
                                  "answer": "B"}) + "\n")  # fmt: skip
    return path


def memory(client: aioredis.Redis, prefix: str) -> tuple[ChangeSetStore, RuleReader]:
    keys = RuleKeys(prefix)
    return ChangeSetStore(client, keys), RuleReader(client, keys)


async def test_stage_exam_gate_and_promote(
    ingest: IngestService,
    retrieval: RetrievalService,
    grading: GradingService,
    service_settings: dict[str, Any],
    cli_env: dict[str, str],
    redis_client: aioredis.Redis,
    prefix: str,
    tmp_path: Path,
) -> None:
    live = events.RuleUpsert(rule=sample_rule(rule_id="returns", text=LIVE_TEXT))
    async with AlignstreamClient(ingest.settings.kafka) as client:
        await client.publish_rules([live], wait=True)
    staged = tmp_path / "q3.jsonl"
    staged.write_text(json.dumps({"tenant": "acme", "rule_id": "returns", "version": 2,
                                  "text": STAGED_TEXT, "title": "Returns"}) + "\n")  # fmt: skip
    code, output = await alignstream_cli(cli_env, "rules", "stage", str(staged), "--name", "q3")
    assert code == 0, output
    assert "1 staged" in output
    code, output = await alignstream_cli(cli_env, "rules", "diff", "q3", "--tenant", "acme")
    assert code == 0, output
    assert "returns" in output
    assert "text" in output
    assert "30 days" in output

    sets, reader = memory(redis_client, prefix)
    gate = ["rules", "promote", "q3", "--tenant", "acme", "--require"]
    code, output = await alignstream_cli(cli_env, *gate, "accuracy_delta >= 0pp")
    assert code == 1
    assert "no exam of revision 1" in output  # no evidence yet: refused, nothing published

    generation = GenerationService(
        GenerationSettings(**service_settings, group_id=f"{prefix}.generation"),
        backend=FollowsItsRules(),
    )
    exam = write_exam(tmp_path / "returns.jsonl", 6)
    async with generation:
        code, output = await alignstream_cli(
            cli_env, "exam", "run", "--dataset", str(exam), "--tenant", "acme",
            "--candidate", "q3", "--timeout", "90",
        )  # fmt: skip
        asked = await alignstream_cli(cli_env, "chat", "How long may I return a product?",
                                      "--tenant", "acme", "--candidate", "q3")  # fmt: skip
        unknown = await alignstream_cli(cli_env, "chat", "How long may I return a product?",
                                        "--tenant", "nobody")  # fmt: skip
    assert unknown[0] == 0, unknown[1]
    assert "no rule of tenant nobody applied" in unknown[1]  # said, not silently ungrounded
    assert asked[0] == 0, asked[1]
    lines = asked[1].splitlines()
    grounded = [[c.strip() for c in line.split("│")] for line in lines
                if line.strip().startswith("returns")]  # fmt: skip
    assert grounded[0][:2] == ["returns", "2"]  # the staged version, before any promote
    assert "(candidate)" in asked[1]
    assert code == 0, output
    assert "candidate vs opo" in output
    info = await sets.info("acme", "q3")
    assert info is not None
    assert info.evidence is not None
    evidence = json.loads(info.evidence)
    assert (evidence["live_accuracy"], evidence["candidate_accuracy"]) == (0.0, 1.0)
    assert (evidence["accuracy_delta"], evidence["pairs"], evidence["revision"]) == (1.0, 6, 1)
    assert [c["delta"] for c in evidence["categories"]] == [1.0, 1.0]

    code, output = await alignstream_cli(cli_env, *gate, "accuracy_delta <= -1pp")
    assert code == 1, output
    assert "promote refused by the gate" in " ".join(output.split())
    assert await reader.version("acme", "returns") == 1  # a refused gate changed nothing

    code, output = await alignstream_cli(
        cli_env, *gate, "accuracy_delta >= -1pp and p_value < 0.05"
    )
    assert code == 0, output
    assert "1 rules live for acme" in output
    assert await reader.version("acme", "returns") == 2
    message = events.ChatMessage(role=events.Role.USER, content="How long may I return a product?")
    question = events.ChatRequest(tenant="acme", messages=(message,))
    async with AlignstreamClient(ingest.settings.kafka) as client:
        answers = await client.ground([question])
    (rule,) = answers[question.request_id].rules
    assert (rule.rule_id, rule.version, rule.text) == ("returns", 2, STAGED_TEXT)
    history = RuleHistory(redis_client, prefix)
    for _ in range(100):  # the promote's republished version comes back through ingest
        if await history.newest_version("acme", "returns") == 2:
            break
        await asyncio.sleep(0.1)
    assert [e.version for e in await history.versions("acme", "returns")] == [2, 1]
    code, output = await alignstream_cli(cli_env, "rules", "changes", "--tenant", "acme")
    assert code == 0, output
    assert "promoted" in output


async def test_kill_9_of_ingest_during_promote_leaves_the_tenant_fully_old_or_fully_new(
    cli_env: dict[str, str],
    kafka_settings: KafkaSettings,
    redis_client: aioredis.Redis,
    prefix: str,
    tmp_path: Path,
) -> None:
    async with FastModel() as model:
        env = service_env(cli_env, prefix, model, ["ingest"])
        ingest = ServiceProcess("ingest", env, tmp_path / "ingest.log")
        ingest.start()
        try:
            await ingest.ready()
            await _promotes_under_kill_9(ingest, kafka_settings, redis_client, prefix)
        finally:
            ingest.stop()


async def _promotes_under_kill_9(
    ingest: ServiceProcess, kafka: KafkaSettings, redis_client: aioredis.Redis, prefix: str
) -> None:
    rules, rounds = 120, 4
    sets, reader = memory(redis_client, prefix)
    ids = [f"r{i}" for i in range(rules)]
    outcomes = []
    async with AlignstreamClient(kafka) as client:
        first = [events.RuleUpsert(rule=sample_rule(rule_id=r, text=f"{r} at 1")) for r in ids]
        await client.publish_rules(first, wait=True, timeout_s=120)
        for round_ in range(1, rounds + 1):
            version, name = round_ + 1, f"round-{round_}"
            staged = [events.ChangeSetStage(name=name, change=events.RuleUpsert(
                rule=sample_rule(rule_id=r, version=version, text=f"{r} at {version}")))
                for r in ids]  # fmt: skip
            await client.publish_rules(staged, wait=True, timeout_s=120)
            promote = events.ChangeSetPromote(tenant="acme", name=name, revision=rules)
            await client.publish_rules([promote])
            await asyncio.sleep(random.Random(round_).uniform(0.0, 0.4))
            ingest.kill()
            versions = {abs(await reader.version("acme", r)) for r in ids}
            stored = {(await reader.get("acme", r)).version for r in ids}  # type: ignore[union-attr]
            assert versions == stored, (round_, versions, stored)
            assert len(versions) == 1, (round_, versions)
            outcomes.append(versions == {version})
            ingest.start()
            await ingest.ready()
            for _ in range(300):  # the promote is redelivered and applied after the restart
                if (await sets.info("acme", name)).state == "promoted":  # type: ignore[union-attr]
                    break
                await asyncio.sleep(0.1)
            assert {abs(await reader.version("acme", r)) for r in ids} == {version}
    assert len(outcomes) == rounds  # each round was either fully old or fully new at the kill


async def test_replay_counts_recorded_requests_the_set_would_ground_differently(
    ingest: IngestService, cli_env: dict[str, str], redis_client: aioredis.Redis, prefix: str
) -> None:
    live = [events.RuleUpsert(rule=sample_rule(rule_id="returns", text=LIVE_TEXT)),
            events.RuleUpsert(rule=sample_rule(rule_id="privacy"))]  # fmt: skip
    staged = events.ChangeSetStage(name="q3", change=events.RuleUpsert(
        rule=sample_rule(rule_id="returns", version=2, text=STAGED_TEXT)))  # fmt: skip
    asked = {"r1": "How long may I return a product?", "r2": "Can you share my personal data?",
             "r3": ""}  # fmt: skip
    async with AlignstreamClient(ingest.settings.kafka) as client:
        await client.publish_rules([*live, staged], wait=True)
        for request_id, question in asked.items():
            await client.send(AUDIT_ENTRIES, events.AuditEntry(
                tenant="acme", request_id=request_id, question=question,
                question_sha256="a" * 64, strategy=events.Strategy.OPO, outcome="ok",
                answered_at=datetime.now(UTC)))  # fmt: skip
        await client.flush()
    for _ in range(100):  # ingest chains the entries onto the audit log
        if len((await read_audit_log(ingest.settings.kafka, idle_ms=100)).links) == 3:
            break
        await asyncio.sleep(0.1)
    replay = ["exam", "run", "--tenant", "acme", "--candidate", "q3", "--replay"]
    code, output = await alignstream_cli(cli_env, *replay, "2020-01-01..")
    assert code == 0, output
    flat = " ".join(output.split())
    # Both questions are given both rules (top 5 of 2): each now gets returns@2 for returns@1.
    assert "2 recorded requests replayed: 2 would be grounded in different rules" in flat
    assert "1 recorded by hash only" in flat
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
            for line in output.splitlines() if "@" in line and "│" in line}  # fmt: skip
    assert rows == {"returns@1": ["0", "2"], "returns@2": ["2", "0"]}
    code, output = await alignstream_cli(cli_env, *replay, "2099-01-01..")
    assert code == 1  # nothing recorded in the window: nothing replayed
    assert "0 recorded requests replayed" in output
    code, output = await alignstream_cli(cli_env, *replay, "yesterday")
    assert code != 0
    assert "cannot read the window" in output
