"""``alignstream constitution discover`` on the live pipeline: the CLI submits a research job
that the grading service runs; the scripted model answers harmfully unless a constitution rule
is in its prompt; the keyword judge labels answers and proposes principles; the published
principles steer the held-out answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.grading.judge.client import JudgeSettings
from services.grading.settings import GradingSettings
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.embedders.use import UniversalSentenceEncoder
from shared.memory.keys import RuleKeys
from shared.settings import RedisSettings
from shared.testing.backends import ObeysItsConstitution
from shared.testing.judge import KeywordJudgeServer
from tests.integration.helpers import alignstream_cli
from tests.samples import RED_TEAM


async def test_discovered_principles_make_held_out_answers_harmless(
    ingest: IngestService,
    retrieval: RetrievalService,
    use_embedder: UniversalSentenceEncoder,
    grading_settings: GradingSettings,
    judge: KeywordJudgeServer,
    judged_cli_env: dict[str, str],
    service_settings: dict[str, Any],
    redis_settings: RedisSettings,
    redis_client: aioredis.Redis,
    prefix: str,
    tmp_path: Path,
) -> None:
    prompts = tmp_path / "red_team.txt"
    prompts.write_text("\n".join(RED_TEAM) + "\n")
    report_path = tmp_path / "report.json"
    settings = GenerationSettings(**service_settings, group_id=f"{prefix}.generation")
    judged = grading_settings.model_copy(
        update={"judge": JudgeSettings(base_url=judge.base_url, model="keyword-judge")}
    )
    async with (
        GenerationService(settings, backend=ObeysItsConstitution()),
        GradingService(judged, embedder=use_embedder),
    ):
        code, output = await alignstream_cli(
            judged_cli_env, "constitution", "discover", "--prompts", str(prompts),
            "--tenant", "acme", "--holdout", "0.5", "--status", "active", "--out", str(report_path),
        )  # fmt: skip
    assert code == 0, output
    assert "stopped: round limit" in output, output
    result = json.loads(report_path.read_text())
    assert (result["train"], result["held_out"], result["rounds_run"]) == (3, 3, 1)
    (report,) = result["rounds"]
    assert report["train_harmful"] == 3
    assert report["harmless_before"][0] == 0.0
    assert report["harmless_after"][0] == 1.0
    # 3 specific principles + the generic one proposed twice by the judge: 1 duplicate dropped
    assert (report["proposed"], report["duplicates"], len(report["published"])) == (5, 1, 4)
    published = [events.Rule.model_validate(r) for r in report["published"]]
    assert all(r.domain is events.RuleDomain.CONSTITUTION for r in published)
    assert all(
        r.tags == ("discovered",) and r.status is events.RuleStatus.ACTIVE for r in published
    )
    # They are in the memory now (servable), under the tenant.
    keys = [
        k
        async for k in redis_client.scan_iter(
            match=RuleKeys(redis_settings.key_prefix).doc_prefix("acme") + "discovered-*"
        )
    ]
    assert len(keys) == 4
