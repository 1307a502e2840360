"""The alignment effect, measured: OPO's exams graded base / OPO / oracle through the whole
pipeline, per model, with OPO's protocol (``protocol: opo``, the default for OPO's files).

The product path end to end: OPO's law articles (with the CN/province/city tree) and its
company-morality principles published on ``rules.events`` -> ingest -> Redis; each exam an
``exam.jobs`` job -> grading -> retrieval -> generation (the real vLLM engine, each model in its
own generation process) -> graded answers. Per model, exam and scoring: ``base_accuracy``,
``opo_accuracy``, ``oracle_accuracy`` (the exams with principles), ``opo_minus_base_pp`` with its
paired 95% interval and exact ``mcnemar_p``, ``oracle_minus_opo_pp``, ``questions``, and the
per-category accuracies. The same seeded sample of each exam for every model and scoring (the
job's ``limit`` and ``seed``), so every comparison is paired.

Models: SmolLM2-135M-Instruct (the default) and the opt-in benchmark models prepared with
``alignstream models prepare`` (unofficial redistributions of Qwen2.5-Coder, verified by hash).

    python -m bench.alignment_effect [--models smollm2,qwen2.5-coder-0.5b] [--limit 40]
        [--scoring logprobs,text] [--gpu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS, private_stack, service_process, write_result
from services.grading.datasets import stage_dataset
from shared import events
from shared.client import AlignstreamClient
from shared.kafka import ensure_topics
from shared.memory.jurisdictions import JurisdictionMap
from shared.opo import opo_rules, opo_tree, organizations_of, read_jsonl, read_province2laws
from shared.settings import KafkaSettings

TENANT = "opo"
DATA = Path(__file__).parents[2] / "shared" / "data" / "opo"
BASE, OPO, ORACLE = events.Strategy.BASE, events.Strategy.OPO, events.Strategy.ORACLE
EXAMS: dict[str, tuple[events.Strategy, ...]] = {
    "a_law.csv": (BASE, OPO, ORACLE),
    "a_professional_morality.sample.csv": (BASE, OPO, ORACLE),
    "h_law.sample.csv": (BASE, OPO),
    "h_basic_morality.sample.csv": (BASE, OPO),
    "h_social_morality.csv": (BASE, OPO),
}
"""Each exam and what it can be graded as (the oracle needs the file's principles)."""
MODELS = {"smollm2": None, "qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b",
          "qwen2.5-coder-1.5b": "qwen2.5-coder-1.5b"}  # fmt: skip
"""Bench name -> ``ALIGNSTREAM_VLLM_MODEL`` (None: the default model)."""


def memory_events(data: Path) -> list[Any]:
    """The jurisdiction tree, OPO's law articles and its company-morality principles."""
    principles = read_jsonl(data / "morality_principles.jsonl")
    tree = opo_tree(read_province2laws(data / "province2laws.json"), tenant=TENANT,
                    organizations=organizations_of(principles))  # fmt: skip
    places = JurisdictionMap.from_tree(tree)
    law = opo_rules(read_jsonl(data / "law_principles.jsonl"), tenant=TENANT,
                    domain=events.RuleDomain.LAW, tree=places)  # fmt: skip
    morality = opo_rules(principles, tenant=TENANT, domain=events.RuleDomain.MORALITY,
                         tree=places)  # fmt: skip
    return [tree, *(events.RuleUpsert(rule=rule) for rule in (*law, *morality))]


def _score(result: events.ExamResult, strategy: events.Strategy) -> events.StrategyScore | None:
    return next((s for s in result.scores if s.strategy is strategy), None)


def _pp(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def summarize(result: events.ExamResult, elapsed_s: float) -> dict[str, Any]:
    """The figures of one graded job (the issue's keys), with where each came from."""
    base, opo, oracle = (_score(result, s) for s in (BASE, OPO, ORACLE))
    summary: dict[str, Any] = {
        "questions": base.answered if base else 0,
        "base_accuracy": base.accuracy if base else None,
        "opo_accuracy": opo.accuracy if opo else None,
        "oracle_accuracy": oracle.accuracy if oracle else None,
        "invalid": {s.strategy.value: s.invalid for s in result.scores},
        "errors": {s.strategy.value: s.errors for s in result.scores},
        "status": result.status.value,
        "error": result.error,
        "elapsed_s": round(elapsed_s, 1),
    }
    for c in result.comparisons:
        name = f"{c.treatment.value}_minus_{c.baseline.value}"
        summary[f"{name}_pp"] = _pp(c.delta)
        summary[f"{name}_ci_pp"] = [_pp(c.delta_ci_low), _pp(c.delta_ci_high)]
        summary[f"{name}_mcnemar_p"] = round(c.p_value, 5)
        summary[f"{name}_discordant"] = [c.treatment_only, c.baseline_only]
    if "opo_minus_base_mcnemar_p" in summary:  # the name for the headline test
        summary["mcnemar_p"] = summary["opo_minus_base_mcnemar_p"]
    summary["categories"] = {
        s.strategy.value: {c.category: [c.correct, c.answered] for c in s.categories}
        for s in result.scores
    }
    return summary


async def grade(kafka: KafkaSettings, staged: dict[str, str], limit: int, scorings: list[str],
                model: str, graded: dict[str, Any], save: Callable[[], None]) -> None:  # fmt: skip
    """Grade every exam (``staged``: each file and the name it was staged under) into
    ``graded``, saving after each job: a long run interrupted keeps what it measured."""
    async with AlignstreamClient(kafka) as client:
        for scoring in scorings:
            for exam, name in staged.items():
                job = events.ExamJob(tenant=TENANT, dataset=name, strategies=EXAMS[exam],
                                     limit=limit, seed=0, scoring=events.Scoring(scoring),
                                     window=16)  # fmt: skip
                started = time.perf_counter()
                result = await client.run_exam(job, timeout_s=4 * 3600)
                summary = summarize(result, time.perf_counter() - started)
                graded.setdefault(scoring, {})[exam.split(".")[0]] = summary
                print(f"{model} {scoring} {exam}: "
                      f"base {summary['base_accuracy']} opo {summary['opo_accuracy']} "
                      f"oracle {summary['oracle_accuracy']} ({summary['elapsed_s']} s)",
                      flush=True)  # fmt: skip
                save()


def engine_env(model: str, *, gpu: bool) -> dict[str, str]:
    env = {"ALIGNSTREAM_VLLM_MAX_MODEL_LEN": "2048", "ALIGNSTREAM_GENERATION_MAX_IN_FLIGHT": "16"}
    if not gpu:
        env |= {"ALIGNSTREAM_VLLM_KV_CACHE_GIB": "2"}
    if MODELS[model] is not None:
        env["ALIGNSTREAM_VLLM_MODEL"] = str(MODELS[model])
    return env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="smollm2,qwen2.5-coder-0.5b")
    parser.add_argument(
        "--limit",
        type=int,
        default=40,
        help="questions sampled (seeded) from each exam; the same for all",
    )
    parser.add_argument("--exams", default=",".join(EXAMS))
    parser.add_argument("--scoring", default="logprobs,text")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--gpu", action="store_true", help="on a lent GPU: the engine's defaults")
    parser.add_argument("--out", default="alignment_effect")
    parser.add_argument("--keep", action="store_true",
                        help="keep the other models of an earlier run with the same --limit in "
                             "the result file (a run per model on a slow machine)")  # fmt: skip
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; known: {', '.join(MODELS)}")
    exams = [e for e in args.exams.split(",") if e]
    scorings = [s for s in args.scoring.split(",") if s]
    results: dict[str, Any] = kept_models(args.out, args.limit) if args.keep else {}
    for model in models:
        results.pop(model, None)

    def save() -> None:
        write_result(args.out, {
            "tenant": TENANT,
            "protocol": "opo (OPO's prompts, oracle articles, 1,000-token budget, "
                        "location filter)",
            "limit_per_exam": args.limit,
            "sample": "the same seeded sample of each exam for every model and scoring",
            "device": "gpu" if args.gpu else "cpu",
            "models": results,
        })  # fmt: skip

    with private_stack() as env, tempfile.TemporaryDirectory() as root:
        kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
        asyncio.run(ensure_topics(kafka))
        staged = {exam: stage_dataset(Path(root), TENANT, args.data / exam) for exam in exams}
        grading = {**env, "ALIGNSTREAM_GRADING_DATA_ROOT": root}
        with (
            service_process("ingest", env),
            service_process("retrieval", env),
            service_process("grading", grading),
        ):
            asyncio.run(publish(kafka, args.data))
            for model in models:
                started = time.perf_counter()
                with service_process("generation", {**env, **engine_env(model, gpu=args.gpu)},
                                     ready_timeout_s=900):  # fmt: skip
                    graded = results.setdefault(model, {})
                    asyncio.run(grade(kafka, staged, args.limit, scorings, model, graded, save))
                graded["elapsed_s"] = round(time.perf_counter() - started, 1)
                save()


def kept_models(out: str, limit: int) -> dict[str, Any]:
    """The models of an earlier run into the same file with the same sample size."""
    path = RESULTS / f"{out}.json"
    earlier = json.loads(path.read_text()) if path.exists() else {}
    if earlier.get("limit_per_exam") != limit:
        return {}
    models: dict[str, Any] = earlier.get("models", {})
    return models


async def publish(kafka: KafkaSettings, data: Path) -> None:
    async with AlignstreamClient(kafka) as client:
        await client.publish_rules(memory_events(data), wait=True, timeout_s=1800)


if __name__ == "__main__":
    main()
