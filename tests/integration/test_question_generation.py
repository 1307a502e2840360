"""``alignstream exam generate`` end to end: the CLI submits a job the grading service runs;
rules in the memory -> questions written by the model through Kafka (scripted) -> the judge's
quality filter (keyword judge over HTTP) -> an exam file that ``exam run`` can read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from services.grading.app import GradingService
from services.grading.datasets import load_exam
from services.grading.judge.client import JudgeSettings
from services.grading.settings import GradingSettings
from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from shared.testing.backends import ScriptedBackend
from shared.testing.judge import KeywordJudgeServer
from tests.integration.helpers import alignstream_cli
from tests.samples import sample_rule

FIXTURES = Path(__file__).parents[1] / "fixtures"


class WritesQuestions(ScriptedBackend):
    """Writes a question about the rule at the end of its prompt; a rule mentioning "garbled"
    gets prose instead, one mentioning "vague" a defective question."""

    model = "question-writer"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        prompt = request.messages[-1]["content"]
        self.prompts.append(prompt)
        await asyncio.sleep(0.02)
        rule = prompt.rsplit("Rule: ", 1)[1].split("\n", 1)[0]
        if "garbled" in rule:
            text = "Here is a thought about the rule, not a question."
        else:
            stem = (
                "??? which one" if "vague" in rule else f"What does the rule '{rule[:30]}' require?"
            )
            text = f"{stem}\nA. {rule}\nB. Nothing\nC. The opposite\nD. Only on Sundays\nAnswer: A"
        return GenerationOutput(text=text, finish_reason="stop", completion_tokens=30)


async def test_generate_an_exam_from_the_tenants_rules(
    ingest: IngestService,
    retrieval: RetrievalService,
    judge: KeywordJudgeServer,
    grading_settings: GradingSettings,
    judged_cli_env: dict[str, str],
    service_settings: dict[str, Any],
    kafka_settings: KafkaSettings,
    prefix: str,
    tmp_path: Path,
) -> None:
    rules = [
        sample_rule(rule_id="refunds", text="Customers may return goods within 30 days."),
        sample_rule(rule_id="vague", text="Staff should be vague about delivery dates."),
        sample_rule(rule_id="garbled", text="This garbled rule gets no question."),
        sample_rule(rule_id="other-tenant", tenant="globex", text="Globex rules stay at globex."),
    ]
    backend = WritesQuestions()
    settings = GenerationSettings(**service_settings, group_id=f"{prefix}.generation")
    out = tmp_path / "acme_exam.csv"
    judged = grading_settings.model_copy(
        update={"judge": JudgeSettings(base_url=judge.base_url, model="keyword-judge")}
    )
    async with (
        GenerationService(settings, backend=backend),
        GradingService(judged),  # the job runs there
        AlignstreamClient(kafka_settings) as client,
    ):
        await client.publish_rules([events.RuleUpsert(rule=r) for r in rules], wait=True)
        code, output = await alignstream_cli(
            judged_cli_env, "exam", "generate", "--tenant", "acme", "--count", "10",
            "--out", str(out), "--examples", str(FIXTURES / "exam_zh.csv"), "--shots", "2",
        )  # fmt: skip
    assert code == 0, output
    assert len(backend.prompts) == 3  # acme's three rules; globex's is never sampled
    assert all(p.count("Rule: ") == 3 for p in backend.prompts)  # two examples, then the rule
    assert judge.requests == 2  # the garbled reply never reaches the judge
    (question,) = load_exam(out).questions  # the vague question failed the quality check
    assert question.principle == "Customers may return goods within 30 days."
    assert question.answer == "A"
    assert "refunds@1" in out.read_text()
    assert "not in exam format" in output
