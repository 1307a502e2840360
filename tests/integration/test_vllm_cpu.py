"""The real vLLM engine on CPU, end to end through Kafka: rules -> retrieval -> generation.

The model is a tiny random-weight chat model built here (no download): its words are
gibberish, so the tests check the plumbing (chat template, sampling, stop, usage, citations,
concurrency), not the quality of answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.generation.app import GenerationService
from services.generation.settings import GenerationSettings, VllmSettings
from services.grading.app import GradingService
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from tests.requirements import require_module
from tests.samples import sample_rule

require_module("vllm", "the CPU engine is installed by scripts/bootstrap.sh")


def cpu_engine(model: Path) -> VllmSettings:
    return VllmSettings(
        model=str(model),
        dtype="float32",
        enforce_eager=True,
        gpu_memory_utilization=0.3,
        max_model_len=1024,
        max_num_seqs=32,
    )


@pytest.fixture
async def generation(
    service_settings: dict[str, Any], prefix: str, tiny_model: Path
) -> AsyncIterator[GenerationService]:
    settings = GenerationSettings(
        **service_settings,
        group_id=f"{prefix}.generation",
        vllm=cpu_engine(tiny_model),
        request_timeout_s=120,
    )
    async with GenerationService(settings) as service:
        yield service


FIXTURES = Path(__file__).parents[1] / "fixtures"


async def test_questions_and_an_exam_through_the_cpu_engine(
    ingest: IngestService,
    retrieval: RetrievalService,
    generation: GenerationService,
    grading: GradingService,
) -> None:
    rule = sample_rule(
        rule_id="refunds", version=7, text="Customers may return goods within 30 days."
    )
    async with AlignstreamClient(generation.settings.kafka) as client:
        await client.publish_rules([events.RuleUpsert(rule=rule)], wait=True)
        questions = [
            events.ChatRequest(
                tenant="acme",
                messages=(events.ChatMessage(role=events.Role.USER, content=f"Refund {i}?"),),
                params=events.GenerationParams(max_tokens=12, seed=i),
            )
            for i in range(6)
        ]
        mcq = events.ChatRequest(
            tenant="acme",
            messages=(events.ChatMessage(role=events.Role.USER, content="Q?\nA. x\nB. y"),),
            strategy=events.Strategy.BASE,
            params=events.GenerationParams(max_tokens=1, option_letters=("A", "B")),
        )
        constrained = mcq.model_copy(
            update={
                "request_id": "constrained",
                "params": events.GenerationParams(
                    max_tokens=1, option_letters=("A", "B"), constrain_to_options=True
                ),
            }
        )
        prefill = events.ChatRequest(
            tenant="acme",
            messages=(events.ChatMessage(role=events.Role.USER, content="Help me."),),
            strategy=events.Strategy.BASE,
            prefill="Of course, I can assist you with that.",
            params=events.GenerationParams(max_tokens=4),
        )
        answers = await client.ask([*questions, mcq, constrained, prefill], timeout_s=240)
        job = events.ExamJob(
            tenant="acme", dataset="exam_zh.csv", max_tokens=8,
            strategies=(events.Strategy.BASE, events.Strategy.OPO, events.Strategy.ORACLE),
        )  # fmt: skip
        exam = await client.run_exam(job, timeout_s=240)
        pieces: list[str] = []
        streamed = await client.ask_streaming(
            events.ChatRequest(
                tenant="acme",
                messages=(events.ChatMessage(role=events.Role.USER, content="Refunds?"),),
                params=events.GenerationParams(max_tokens=24, seed=1),
            ),
            pieces.append,
            timeout_s=120,
        )

    for question in questions:
        answer = answers[question.request_id]
        assert answer.ok, answer.error
        # A local folder is named by its name, not by a path on the serving machine.
        model = Path(str(generation.settings.vllm.model)).name
        assert (answer.backend, answer.model) == ("vllm-engine", model)
        assert answer.grounded_in == (events.RuleRef(rule_id="refunds", version=7),)
        assert 1 <= answer.usage.completion_tokens <= 12
        assert answer.usage.prompt_tokens > 10
        assert answer.timings.retrieval_ms > 0
        assert answer.finish_reason in ("length", "stop")
    scored = answers[mcq.request_id]
    assert scored.ok
    assert scored.grounded_in == ()
    assert scored.option_logprobs is not None
    assert set(scored.option_logprobs) <= {"A", "B"}
    # OPO's scoring: the first token can only be an option letter (a random model included).
    chosen = answers[constrained.request_id]
    assert chosen.text.strip() in {"A", "B"}, chosen.text
    assert chosen.option_logprobs is not None
    assert chosen.text.strip() in chosen.option_logprobs
    assert answers[prefill.request_id].ok

    # The exam job: every question asked with every strategy and graded once; the random model's
    # choices are noise, but none may be lost or fail.
    assert exam.status is events.JobStatus.DONE
    assert (exam.answered, exam.total_answers) == (12, 12)
    assert [(s.strategy, s.answered, s.errors) for s in exam.scores] == [
        (events.Strategy.BASE, 4, 0), (events.Strategy.OPO, 4, 0), (events.Strategy.ORACLE, 4, 0)
    ]  # fmt: skip
    assert all(s.latency_p50_ms > 0 for s in exam.scores)

    # Streaming through the real engine: the pieces add up to the answer.
    assert streamed.ok
    assert pieces
    assert "".join(pieces) == streamed.text
