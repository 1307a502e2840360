"""What ``alignstream demo`` runs: the whole pipeline on the local stack, end to end.

On the local stack ``demo`` started: runs the four services in this process, streams a sample
rule set over Kafka, shows what each question is grounded in (scope, rules, why each was found)
while the model loads, then the answers and the rule versions they cite; updates and deletes a
rule live and asks again; and runs an exam slice, base vs OPO, on facts found only in the
tenant's rules.

Generation uses the configured backend (``ALIGNSTREAM_GENERATION_BACKEND``, ``ALIGNSTREAM_VLLM_*``,
``ALIGNSTREAM_OPENAI_*``); unconfigured, SmolLM2-135M-Instruct on the CPU engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from services.cli.demo_rules import DEMO_EXAM, QUESTIONS, REFUNDS_UPDATE, SAMPLE_RULES
from services.cli.demo_view import answer_panel, grounding_panel
from services.cli.exam import follow_job, show_result
from services.cli.progress import console, waiting_for
from services.generation.app import GenerationService
from services.generation.models import smollm2
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.grading.datasets import stage_dataset
from services.grading.settings import GradingSettings
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.service import Service
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.topic_tail import TopicTail
from shared.topics import CHAT_RESPONSES

MAX_TOKENS = 32


def _question(tenant: str, text: str, jurisdictions: tuple[str, ...] = ()) -> events.ChatRequest:
    return events.ChatRequest(
        tenant=tenant,
        messages=(events.ChatMessage(role=events.Role.USER, content=text),),
        scope=events.RuleScope(jurisdictions=jurisdictions, top_k=3, min_score=0.15),
        params=events.GenerationParams(max_tokens=MAX_TOKENS, temperature=0.0, seed=0),
    )


@contextlib.asynccontextmanager
async def started_in_background(service: Service) -> AsyncIterator[asyncio.Task[None]]:
    """Start a slow service (the model loads) while the demo goes on; stop it at the end."""
    task = asyncio.create_task(service.start())
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await service.stop()


async def _ask(
    client: AlignstreamClient,
    requests: list[events.ChatRequest],
    generation: asyncio.Task[None],
    answers: list[events.ChatResponse],
) -> None:
    """Show what retrieval grounded each request in as soon as it is known, then the answers
    (generation consumes the same grounded requests)."""
    async with TopicTail(client.settings, client.topics(CHAT_RESPONSES), chat_path=True) as tail:
        grounded = await client.ground(requests)
        for request in requests:
            console.print(grounding_panel(grounded[request.request_id]))
        if not generation.done():
            with waiting_for("waiting for the generation service to load the model"):
                await asyncio.shield(generation)
        generation.result()  # a failed start surfaces here
        with waiting_for(f"generating {len(requests)} answers in one batch"):
            responses = await tail.collect(
                events.ChatResponse.model_validate_json,
                lambda r: r.request_id,
                grounded,
                timeout_s=300,
            )
    for request in requests:
        response = responses[request.request_id]
        answers.append(response)
        console.print(answer_panel(response, question=request.question))


async def _exam_slice(client: AlignstreamClient) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "acme_exam.jsonl"
        path.write_text("".join(json.dumps(q) + "\n" for q in DEMO_EXAM), encoding="utf-8")
        staged = stage_dataset(GradingSettings().data_root, "acme", path)
        # Scored by the option letters' logprobs, as OPO does: one token per answer.
        job = events.ExamJob(tenant="acme", dataset=staged, scoring="logprobs",
                             strategies=(events.Strategy.BASE, events.Strategy.OPO))  # fmt: skip
        result = await follow_job(client, job, timeout_s=600)
    show_result(result)


def _generation_settings(
    kafka: KafkaSettings, quiet: ObservabilitySettings, model: str | None = None
) -> GenerationSettings:
    """``model``: a benchmark model's name or a model folder (None: the environment's)."""
    settings = GenerationSettings(kafka=kafka, observability=quiet, max_in_flight=32)
    engine = {"max_num_seqs": 32, **({"model": model} if model else {})}
    return settings.model_copy(update={"vllm": settings.vllm.model_copy(update=engine)})


def _model_note(settings: GenerationSettings) -> str:
    if settings.backend == "vllm" and settings.vllm.model is None:
        return (f"{smollm2.MODEL_NAME} (135M parameters, English only, on the CPU) follows "
                "rules poorly: the grounding above is the product, its answers are a small "
                "model's. For a real model: ALIGNSTREAM_VLLM_MODEL=<model folder> on a GPU, or "
                "ALIGNSTREAM_GENERATION_BACKEND=openai with ALIGNSTREAM_OPENAI_BASE_URL, _MODEL "
                "and _API_KEY (any OpenAI-compatible endpoint).")  # fmt: skip
    return f"model: {settings.backend} {settings.vllm.model or settings.openai.model}"


async def run_demo(kafka: KafkaSettings, model: str | None = None) -> list[events.ChatResponse]:
    """Run the demo; return every answer shown (for ``bench.newcomer``)."""
    quiet = ObservabilitySettings(http_host="127.0.0.1", http_port=0)
    generation_settings = _generation_settings(kafka, quiet, model)
    generation = GenerationService(generation_settings)
    embedder = UniversalSentenceEncoder()
    ingest = IngestService(IngestSettings(kafka=kafka, observability=quiet), embedder=embedder)
    retrieval = RetrievalService(
        RetrievalSettings(kafka=kafka, observability=quiet), embedder=embedder
    )
    grading = GradingService(GradingSettings(kafka=kafka, observability=quiet))
    answers: list[events.ChatResponse] = []
    console.rule("1. services: ingest, retrieval, grading; generation loads its model meanwhile")
    async with (
        started_in_background(generation) as generation_ready,
        ingest,
        retrieval,
        grading,
        AlignstreamClient(kafka) as client,
    ):
        # Versions from the clock: every run supersedes the previous run's rules.
        base = int(time.time() * 1000)
        rules = [events.Rule.model_validate({**r, "version": base}) for r in SAMPLE_RULES]
        console.rule(f"2. {len(rules)} rules of 3 tenants stream over Kafka into the memory")
        confirmations = await client.publish_rules(
            [events.RuleUpsert(rule=r) for r in rules], wait=True
        )
        slowest = max(c.latency_ms for c in confirmations)
        console.print(f"all {len(confirmations)} rules servable, the slowest {slowest:.0f} ms "
                      "after it was published")  # fmt: skip

        console.rule("3. questions: the rules that apply, and only those, reach the model")
        questions = [_question(q["tenant"], q["question"], tuple(q.get("jurisdictions", ())))
                     for q in QUESTIONS]  # fmt: skip
        await _ask(client, questions, generation_ready, answers)

        console.rule("4. live update: acme shortens its refund window to 14 days")
        refunds = next(r for r in rules if r.rule_id == "refunds")
        update = events.RuleUpsert(
            rule=refunds.model_copy(update={"version": base + 1, "text": REFUNDS_UPDATE})
        )
        (confirmed,) = await client.publish_rules([update], wait=True)
        console.print(f"refunds v{confirmed.version} servable {confirmed.latency_ms:.0f} ms "
                      "after it was published; the same question again:")  # fmt: skip
        refund_question = str(QUESTIONS[1]["question"])
        await _ask(client, [_question("acme", refund_question)], generation_ready, answers)

        console.rule("5. live delete: acme withdraws its refund policy")
        delete = events.RuleDelete(tenant="acme", rule_id="refunds", version=base + 2)
        (confirmed,) = await client.publish_rules([delete], wait=True)
        console.print(f"deleted, {confirmed.latency_ms:.0f} ms; the same question again:")
        await _ask(client, [_question("acme", refund_question)], generation_ready, answers)

        console.rule("6. exam slice on acme's house rules: without retrieval (base) vs OPO")
        await _exam_slice(client)
        console.print(_model_note(generation_settings), style="yellow")
    return answers
