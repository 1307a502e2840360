"""C2-EVAL course-correction jobs through the pipeline, judged over the OpenAI API.

The model is scripted (it corrects course when the harmful prefill is short, and goes on
otherwise) and the judge is the deterministic keyword judge behind a real HTTP endpoint, so
Corr@k is known in advance and the judge's cache can be checked by counting its requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.grading.datasets import COMPLIANCE_OPENER
from services.grading.judge.client import JudgeSettings
from services.grading.settings import GradingSettings
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.testing.backends import ScriptedBackend
from shared.testing.judge import KeywordJudgeServer

FIXTURES = Path(__file__).parents[1] / "fixtures"


class CorrectsEarly(ScriptedBackend):
    """Continues a prefill: refuses when at most 30 words of harm were prefilled."""

    model = "corrects-early"

    def __init__(self) -> None:
        self.seen: list[GenerationInput] = []

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        self.seen.append(request)
        await asyncio.sleep(0.02)
        prefill = request.messages[-1]["content"]
        harm = len(prefill.removeprefix(COMPLIANCE_OPENER).split())
        text = ("... wait, I can't continue: this would be illegal." if harm <= 30
                else " Then do the next step quickly.")  # fmt: skip
        return GenerationOutput(text=text, finish_reason="length", completion_tokens=9)


@pytest.fixture
async def judged_grading(
    grading_settings: GradingSettings, judge: KeywordJudgeServer, redis_client: aioredis.Redis
) -> AsyncIterator[GradingService]:
    settings = grading_settings.model_copy(
        update={"judge": JudgeSettings(base_url=judge.base_url, model="keyword-judge")}
    )
    async with GradingService(settings) as service:
        yield service


def c2_job(**fields: Any) -> events.ExamJob:
    return events.ExamJob(tenant="acme", dataset="c2eval_sample.jsonl",
                          task="course-correction", strategies=(events.Strategy.BASE,),
                          prefill_words=(10, 40), max_tokens=32, **fields)  # fmt: skip


async def test_corr_at_k_with_a_cached_judge(
    retrieval: RetrievalService,
    judged_grading: GradingService,
    judge: KeywordJudgeServer,
    service_settings: dict[str, Any],
    prefix: str,
) -> None:
    backend = CorrectsEarly()
    settings = GenerationSettings(**service_settings, group_id=f"{prefix}.generation")
    async with (
        GenerationService(settings, backend=backend),
        AlignstreamClient(judged_grading.settings.kafka) as client,
    ):
        first = await client.run_exam(c2_job(), timeout_s=60)
        judged = judge.requests
        rerun = await client.run_exam(c2_job(), timeout_s=60)

    (score,) = first.scores
    corr = {c.category: (c.correct, c.answered) for c in score.categories}
    assert corr == {"k=10": (2, 2), "k=40": (0, 2)}  # Corr@10 = 1, Corr@40 = 0
    assert score.accuracy == pytest.approx(0.5)  # mean Corr@k (equal items per k)
    assert score.invalid == 0
    assert judged == 4  # one judge call per item
    # The generation request: the harmful prompt, then the prefilled assistant turn to continue.
    request = backend.seen[0]
    assert request.continue_final
    assert [m["role"] for m in request.messages] == ["user", "assistant"]
    assert request.messages[1]["content"].startswith(COMPLIANCE_OPENER)
    assert (request.params.temperature, request.params.top_p) == (0.8, 0.7)
    # A rerun of the same items costs no judge call.
    assert judge.requests == judged
    assert [s.correct for s in rerun.scores] == [s.correct for s in first.scores]


async def test_course_correction_without_a_judge_fails_clearly(grading: GradingService) -> None:
    async with AlignstreamClient(grading.settings.kafka) as client:
        result = await client.run_exam(c2_job(), timeout_s=20)
    assert result.status is events.JobStatus.FAILED
    assert result.error is not None
    assert "need a judge" in result.error
