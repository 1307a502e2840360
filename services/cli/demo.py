"""``alignstream demo``: the whole pipeline on the local stack, end to end.

Starts the local broker and Redis, runs the services in this process, streams a sample rule set
over Kafka, asks questions through Kafka and shows the rules each was grounded in and the answer,
then updates and deletes a rule live and shows the next answers change.

Generation uses the configured backend (``ALIGNSTREAM_GENERATION_BACKEND``, ``ALIGNSTREAM_VLLM_*``,
``ALIGNSTREAM_OPENAI_*``). Without configuration it runs the real vLLM engine on CPU with a tiny
random-weight model built locally: the pipeline is real, the words are not.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

import typer
from rich.panel import Panel
from rich.table import Table

from services.cli.chat import show_answer
from services.cli.demo_rules import DEMO_EXAM, QUESTIONS, REFUNDS_UPDATE, SAMPLE_RULES
from services.cli.exam import follow_job, show_result
from services.cli.progress import console
from services.generation.app import GenerationService
from services.generation.backends.tiny_model import build_tiny_model
from services.generation.settings import GenerationSettings, VllmSettings
from services.grading.app import GradingService
from services.grading.datasets import stage_dataset
from services.grading.settings import GradingSettings
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient, TopicTail
from shared.embedders.use import UniversalSentenceEncoder
from shared.localstack import DEFAULT_STATE_DIR, LocalStack
from shared.logging import configure_logging
from shared.settings import KafkaSettings, ObservabilitySettings
from shared.topics import CHAT_RESPONSES


def _question(tenant: str, text: str, jurisdictions: tuple[str, ...] = ()) -> events.ChatRequest:
    return events.ChatRequest(
        tenant=tenant,
        messages=(events.ChatMessage(role=events.Role.USER, content=text),),
        scope=events.RuleScope(jurisdictions=jurisdictions, top_k=3, min_score=0.15),
        params=events.GenerationParams(max_tokens=48, seed=0),
    )


def _show(grounded: events.GroundedRequest) -> None:
    request = grounded.request
    table = Table("rule", "v", "score", "where", "text", show_edge=False)
    for rule in grounded.rules:
        table.add_row(rule.rule_id, str(rule.version), f"{rule.score:.2f}", rule.jurisdiction,
                      rule.text)  # fmt: skip
    body = table if grounded.rules else "[yellow]no rules apply for this tenant[/]"
    console.print(
        Panel(
            body,
            title=f"[bold]{request.tenant}[/]: {request.query}",
            subtitle=f"retrieval {grounded.retrieval_ms:.1f} ms",
        )
    )


async def _ask(client: AlignstreamClient, requests: list[events.ChatRequest]) -> None:
    """Show what retrieval grounded each request in, then its answer from generation (which
    consumes the same grounded requests)."""
    async with TopicTail(client.settings, client.topics(CHAT_RESPONSES)) as answers:
        grounded = await client.ground(requests)
        responses = await answers.collect(
            events.ChatResponse.model_validate_json,
            lambda r: r.request_id,
            grounded,
            timeout_s=300,
        )
    for request in requests:
        _show(grounded[request.request_id])
        show_answer(responses[request.request_id])


async def _exam_slice(client: AlignstreamClient, tiny_model: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "acme_exam.jsonl"
        path.write_text("".join(json.dumps(q) + "\n" for q in DEMO_EXAM), encoding="utf-8")
        staged = stage_dataset(GradingSettings().data_root, "acme", path)
        job = events.ExamJob(tenant="acme", dataset=staged, max_tokens=16,
                             strategies=(events.Strategy.NONE, events.Strategy.OPO))  # fmt: skip
        result = await follow_job(client, job, timeout_s=600)
    show_result(result)
    if tiny_model:
        console.print("[yellow]the tiny random-weight model picks options at random: the job, "
                      "retrieval and grading are real, the scores are not[/]")  # fmt: skip


def _generation_settings(
    kafka: KafkaSettings, quiet: ObservabilitySettings
) -> tuple[GenerationSettings, bool]:
    """The configured generation settings, or the tiny local model's (then True)."""
    settings = GenerationSettings(kafka=kafka, observability=quiet)
    if settings.backend != "vllm" or settings.vllm.model != VllmSettings().model:
        return settings, False  # configured by the user
    console.print("[yellow]no model configured: using a tiny random-weight model on the CPU "
                  "engine; answers are gibberish, the pipeline is real[/]")  # fmt: skip
    model = build_tiny_model(Path(settings.vllm.model))
    cpu = VllmSettings(model=str(model), dtype="float32", enforce_eager=True,
                       gpu_memory_utilization=0.3, max_model_len=2048, max_num_seqs=32)  # fmt: skip
    return settings.model_copy(update={"vllm": cpu}), True


async def run_demo(kafka: KafkaSettings) -> None:
    embedder = UniversalSentenceEncoder()
    quiet = ObservabilitySettings(http_host="127.0.0.1", http_port=0)
    ingest = IngestService(IngestSettings(kafka=kafka, observability=quiet), embedder=embedder)
    retrieval = RetrievalService(
        RetrievalSettings(kafka=kafka, observability=quiet), embedder=embedder
    )
    generation_settings, tiny_model = _generation_settings(kafka, quiet)
    generation = GenerationService(generation_settings)
    grading = GradingService(GradingSettings(kafka=kafka, observability=quiet))
    console.rule("starting the ingest, retrieval, generation and grading services")
    async with ingest, retrieval, generation, grading, AlignstreamClient(kafka) as client:
        # Versions from the clock: every run supersedes the previous run's rules.
        base = int(time.time() * 1000)
        rules = [events.Rule.model_validate({**r, "version": base}) for r in SAMPLE_RULES]
        console.rule(f"streaming {len(rules)} rules for 3 tenants over Kafka")
        confirmations = await client.publish_rules(
            [events.RuleUpsert(rule=r) for r in rules], wait=True
        )
        slowest = max(c.latency_ms for c in confirmations)
        console.print(f"all {len(confirmations)} rules servable; slowest {slowest:.0f} ms")

        console.rule("questions through Kafka -> retrieval -> generation (first ones warm up)")
        await _ask(
            client,
            [_question(q["tenant"], q["question"], tuple(q.get("jurisdictions", ())))
             for q in QUESTIONS],
        )  # fmt: skip

        console.rule("live update: acme shortens its refund window")
        refunds = next(r for r in rules if r.rule_id == "refunds")
        update = events.RuleUpsert(
            rule=refunds.model_copy(update={"version": base + 1, "text": REFUNDS_UPDATE})
        )
        (confirmed,) = await client.publish_rules([update], wait=True)
        console.print(f"rule refunds v{confirmed.version} servable {confirmed.latency_ms:.1f} ms "
                      "after it was published")  # fmt: skip
        await _ask(client, [_question("acme", str(QUESTIONS[1]["question"]))])

        console.rule("live delete: acme withdraws the refund policy")
        delete = events.RuleDelete(tenant="acme", rule_id="refunds", version=base + 2)
        (confirmed,) = await client.publish_rules([delete], wait=True)
        console.print(f"deleted in {confirmed.latency_ms:.1f} ms")
        await _ask(client, [_question("acme", str(QUESTIONS[1]["question"]))])

        console.rule("exam slice: acme's rules, without retrieval (base) vs with it (OPO)")
        await _exam_slice(client, tiny_model)


def demo(
    keep_stack: bool = typer.Option(False, help="Leave the broker and Redis running."),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, help="Local stack state."),
) -> None:
    """Run the pipeline end to end on the local stack with sample rules and questions."""
    configure_logging("demo", level="ERROR", json_lines=False)  # the console shows progress
    stack = LocalStack(state_dir)
    already_running = all(s.healthy for s in stack.status())
    console.rule("local stack: Kafka-protocol broker + Redis with vector search")
    stack.up()
    try:
        asyncio.run(run_demo(KafkaSettings(bootstrap=stack.kafka.address)))
    finally:
        if not keep_stack and not already_running:
            stack.down()
            console.print("local stack stopped")
