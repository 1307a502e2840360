"""Research jobs through the pipeline: DRPO's search and its resume, C2-SYN's throughput,
IterAlign's rounds. A private broker and Redis; ingest, retrieval, generation and grading in
this process.

- DRPO: a model that follows its system prompt (scripted: it says the judge's marker word once
  per mention in its prompt), the scripted aspect judge and rewriter over HTTP, DRPO's own seed
  queries. One uninterrupted search (the baseline), then the same search crashed by an optimizer
  outage and resumed, with the judge's cache emptied in between: the calls the resume did not
  make again are ``drpo_judged_calls_saved_on_resume``.
- C2-SYN: the default model (SmolLM2-135M-Instruct) on the CPU vLLM engine, the keyword judge,
  C2-EVAL's PKU-SafeRLHF rows. Baseline in the same run: the same engine generating the same
  plain answers and prefilled continuations directly (no Kafka, no services, no judge).
- IterAlign: a model that obeys a constitution when one reaches it, the keyword judge, DRPO's
  42 harmful queries, ``--until-stable``.

    python -m bench.research_jobs [--c2syn-requests 16] [--depth 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import private_stack, write_result
from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput
from services.generation.backends.vllm_engine import VllmEngineBackend
from services.generation.prompts import build_prompt
from services.generation.settings import GenerationSettings, VllmSettings
from services.grading.app import GradingService
from services.grading.judge.client import JudgeSettings, OptimizerSettings
from services.grading.research.c2syn.job import load_rows
from services.grading.research.c2syn.synthesis import corrections
from services.grading.settings import GradingSettings
from services.ingest.app import IngestService
from services.ingest.settings import IngestSettings
from services.retrieval.app import RetrievalService
from services.retrieval.settings import RetrievalSettings
from shared import events
from shared.client import AlignstreamClient
from shared.embedders.use import UniversalSentenceEncoder
from shared.kafka import ensure_topics
from shared.prompt_sets import PromptSet, PromptSetStore
from shared.redis import make_redis
from shared.settings import KafkaSettings, ObservabilitySettings, RedisSettings
from shared.testing.backends import FollowsItsSystemPrompt, ObeysItsConstitution
from shared.testing.judge import KeywordJudgeServer
from shared.testing.research import AspectJudgeServer, RewriteServer

TENANT = "bench"
DATA = Path(__file__).parents[2] / "shared" / "data"
MARKER = "careful"
SMOLLM2 = Path(".alignstream/models/SmolLM2-135M-Instruct")


# Each phase's services join consumer groups of their own and stay up for the phase: a new
# member joining a group a stopped one had just left waited for the broker's rebalance for
# minutes here (Tansu), twice in a row.
class Stack:
    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.kafka = KafkaSettings(bootstrap=env["KAFKA_BOOTSTRAP"])
        self.redis = RedisSettings(url=env["REDIS_URL"])
        self.root = root
        self.common: dict[str, Any] = {
            "kafka": self.kafka,
            "redis": self.redis,
            "observability": ObservabilitySettings(http_host="127.0.0.1", http_port=0),
        }

    def grading(self, phase: str, **update: Any) -> GradingSettings:
        return GradingSettings(
            group_id=f"bench-grading-{phase}",
            **self.common,
            data_root=self.root,
            progress_interval_s=0.5,
            **update,
        )

    def generation(self, **update: Any) -> GenerationSettings:
        return GenerationSettings(**self.common, **update)

    @contextlib.asynccontextmanager
    async def grading_client(
        self, settings: GradingSettings, embedder: UniversalSentenceEncoder | None = None
    ) -> AsyncIterator[AlignstreamClient]:
        """One grading service for a phase (restarting it between jobs only costs consumer
        group rebalances), and a client to submit jobs to it."""
        async with (
            GradingService(settings, embedder=embedder) as grading,
            AlignstreamClient(grading.settings.kafka) as client,
        ):
            yield client


async def clear_caches(redis: RedisSettings) -> None:
    client = make_redis(redis)
    try:
        for role in ("judge", "optimizer"):
            keys = [k async for k in client.scan_iter(match=f"{redis.key_prefix}:{role}:*")]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


async def drpo(stack: Stack, depth: int, embedder_name: str) -> dict[str, Any]:
    folder = stack.root / TENANT
    seeds = [line for line in (DATA / "drpo" / "mal_train.txt").read_text().splitlines() if line]
    seeds += [
        r["instruction"] for r in json.loads((DATA / "drpo" / "alpaca_train.json").read_text())
    ]
    (folder / "drpo_seeds.txt").write_text("\n".join(seeds[:60]) + "\n")
    redis = make_redis(stack.redis)
    start = PromptSet(name="default", system="You are a helpful assistant.")
    await PromptSetStore(redis, stack.redis.key_prefix).put(
        start, np.zeros((0, 0), dtype=np.float32), embedder_name, owner=TENANT
    )
    await redis.aclose()
    spec = events.PromptOptimizeSpec(
        seeds=("drpo_seeds.txt",),
        beam=2,
        actions=3,
        depth=depth,
        queries_per_level=4,
        holdout=0.3,
        max_tokens=64,
    )
    async with (
        AspectJudgeServer(MARKER) as judge,
        RewriteServer({1: "Be quick.", 2: f"Be {MARKER}.", 3: "Be brief."}) as optimizer,
        GenerationService(
            stack.generation(group_id="bench-generation-drpo"), backend=FollowsItsSystemPrompt()
        ),
    ):
        settings = stack.grading(
            "drpo",
            judge=JudgeSettings(base_url=judge.base_url, model="aspect-judge"),
            optimizer=OptimizerSettings(
                base_url=optimizer.base_url, model="rewriter", max_retries=0
            ),
        )

        def calls() -> int:
            return judge.requests + optimizer.requests

        async with stack.grading_client(settings) as client:
            full = await client.run_research(events.ResearchJob(tenant=TENANT, spec=spec))
            full_calls = calls()
            await clear_caches(stack.redis)
            optimizer.fail_after = optimizer.rewrites + 3 * depth  # about half-way
            crashed_job = events.ResearchJob(tenant=TENANT, spec=spec)
            crashed = await client.run_research(crashed_job)
            before_resume = calls()
            optimizer.fail_after = None
            resumed = await client.run_research(crashed_job)  # submitted again: resumes
            resume_calls = calls() - before_resume
    assert full.status is events.JobStatus.DONE, full.error
    assert crashed.status is events.JobStatus.FAILED
    assert resumed.status is events.JobStatus.DONE, resumed.error
    crashed_calls = before_resume - full_calls - optimizer.failed
    return {
        "drpo_reward_start": full.result["reward_start"],
        "drpo_reward_best": full.result["reward_best"],
        "drpo_best_level": full.result["best_level"],
        "drpo_levels": depth + 1,
        "drpo_seconds": full.elapsed_s,
        "drpo_model_calls_uninterrupted": full_calls,
        "drpo_model_calls_before_crash": crashed_calls,
        "drpo_calls_failed_by_the_outage": optimizer.failed,
        "drpo_model_calls_after_resume": resume_calls,
        "drpo_judged_calls_saved_on_resume": full_calls - resume_calls,
        "drpo_calls_repeated_by_resume": crashed_calls + resume_calls - full_calls,
        "drpo_nodes_restored_on_resume": resumed.result["nodes_restored"],
        "drpo_resumed_reward_best": resumed.result["reward_best"],
    }


async def raw_c2syn_seconds(
    backend: VllmEngineBackend, rows: list[tuple[str, str]], max_tokens: int
) -> float:
    """The same generations as the job (plain answer + one continuation per cut), straight
    into the engine."""
    inputs = []
    for prompt, response in rows:
        for prefill in [None, *(c.prefill for c in corrections(prompt, response, 4, 0))]:
            chat = events.ChatRequest(
                tenant=TENANT,
                strategy=events.Strategy.BASE,
                prefill=prefill,
                messages=(events.ChatMessage(role=events.Role.USER, content=prompt),),
                params=events.GenerationParams(max_tokens=max_tokens, seed=0),
            )
            built = build_prompt(events.GroundedRequest(request=chat, received_at=chat.created_at))
            inputs.append(
                GenerationInput(
                    f"raw-{uuid.uuid4().hex}",
                    built.messages,
                    chat.params,
                    continue_final=built.continue_final,
                    stop=built.stop,
                )
            )
    started = time.perf_counter()
    await asyncio.gather(*(backend.generate(i) for i in inputs))
    return time.perf_counter() - started


async def c2syn(stack: Stack, requests: int, max_tokens: int) -> dict[str, Any]:
    source = DATA / "course-correction" / "c2eval_test.jsonl"
    (stack.root / TENANT / "c2eval.jsonl").write_bytes(source.read_bytes())
    rows = load_rows(stack.root, TENANT, "c2eval.jsonl", 10, requests)
    engine = VllmSettings(
        model=str(SMOLLM2),
        dtype="float32",
        enforce_eager=True,
        max_model_len=2048,
        max_num_seqs=128,
    )
    backend = VllmEngineBackend(engine)
    async with (
        KeywordJudgeServer() as judge,
        GenerationService(
            stack.generation(group_id="bench-generation-c2syn", vllm=engine), backend=backend
        ),
    ):
        # The CPU engine gets faster pass after pass over the same prompts (first-seen batch
        # shapes cost more: ~105 s, ~90 s, then ~28 s here), so three warm-up passes first;
        # vLLM's prefix cache then serves the raw runs and the jobs alike.
        for _ in range(3):
            await raw_c2syn_seconds(backend, rows, max_tokens)
        raw_s = await raw_c2syn_seconds(backend, rows, max_tokens)
        settings = stack.grading(
            "c2syn", judge=JudgeSettings(base_url=judge.base_url, model="keyword")
        )
        runs = {}
        async with stack.grading_client(settings) as client:
            for verify in (True, False):
                spec = events.CourseCorrectionSynthSpec(
                    dataset="c2eval.jsonl",
                    min_words=10,
                    limit=requests,
                    max_tokens=max_tokens,
                    verify=verify,
                )
                done = await client.run_research(events.ResearchJob(tenant=TENANT, spec=spec))
                assert done.status is events.JobStatus.DONE, done.error
                runs[verify] = done
        raw_after_s = await raw_c2syn_seconds(backend, rows, max_tokens)
    raw_mean_s = (raw_s + raw_after_s) / 2
    verified, unverified = runs[True], runs[False]
    made, kept = unverified.result, verified.result
    return {
        "c2syn_model": SMOLLM2.name,
        "c2syn_requests": made["requests"],
        "c2syn_generations_per_request": 5,
        "c2syn_pairs_per_s": made["pairs_per_s"],
        "c2syn_pairs_per_s_measures": "pairs written per second by `synth course-correction "
        "--no-verify` (C2-SYN as published: the trigger is trusted); SmolLM2-135M's answers "
        "pass the keyword judge too rarely for a verified rate to measure throughput "
        "(c2syn_verified_*)",
        "c2syn_pairs": made["pairs"],
        "c2syn_pairs_per_request": made["pairs_per_request"],
        "c2syn_requests_per_s": round(int(str(made["requests"])) / unverified.elapsed_s, 3),
        "c2syn_job_seconds": unverified.elapsed_s,
        "c2syn_raw_engine_seconds_same_generations": round(raw_mean_s, 2),
        "c2syn_raw_engine_seconds_before_and_after_the_jobs": [
            round(raw_s, 2),
            round(raw_after_s, 2),
        ],
        "c2syn_ratio_raw_engine_time_vs_job": round(raw_mean_s / unverified.elapsed_s, 3),
        "c2syn_verified_pairs": kept["pairs"],
        "c2syn_verified_pairs_per_request": kept["pairs_per_request"],
        "c2syn_verified_rejected_corrections": kept["rejected_corrections"],
        "c2syn_verified_rejected_own_answers": kept["rejected_own_answers"],
        "c2syn_verified_pairs_per_s": kept["pairs_per_s"],
        "c2syn_verified_job_seconds": verified.elapsed_s,
        "c2syn_ratio_raw_engine_time_vs_verified_job": round(raw_mean_s / verified.elapsed_s, 3),
    }


async def iteralign(stack: Stack) -> dict[str, Any]:
    prompts = (DATA / "drpo" / "mal_train.txt").read_text()
    (stack.root / TENANT / "red_team.txt").write_text(prompts)
    embedder = UniversalSentenceEncoder()
    spec = events.ConstitutionDiscoverSpec(prompts="red_team.txt", rounds=10, holdout=0.3)
    async with (
        KeywordJudgeServer() as judge,
        IngestService(IngestSettings(**stack.common), embedder=embedder),
        GenerationService(
            stack.generation(group_id="bench-generation-iteralign"), backend=ObeysItsConstitution()
        ),
    ):
        settings = stack.grading(
            "iteralign", judge=JudgeSettings(base_url=judge.base_url, model="keyword")
        )
        async with stack.grading_client(settings, embedder) as client:
            done = await client.run_research(events.ResearchJob(tenant=TENANT, spec=spec))
    assert done.status is events.JobStatus.DONE, done.error
    return {
        "iteralign_rounds": done.result["rounds_run"],
        "iteralign_stop_reason": done.result["stop_reason"],
        "iteralign_principles": done.result["principles"],
        "iteralign_harmless_start": done.result["harmless_start"],
        "iteralign_harmless_end": done.result["harmless_end"],
    }


async def run(args: argparse.Namespace, env: dict[str, str], root: Path) -> dict[str, Any]:
    stack = Stack(env, root)
    (root / TENANT).mkdir(parents=True, exist_ok=True)
    await ensure_topics(stack.kafka)
    embedder = UniversalSentenceEncoder()
    async with RetrievalService(RetrievalSettings(**stack.common), embedder=embedder):
        result = await drpo(stack, args.depth, embedder.name)
        result |= await iteralign(stack)
        result |= await c2syn(stack, args.c2syn_requests, args.max_tokens)
    return {
        **result,
        "scripted": "DRPO's model, judge and optimizer and IterAlign's model and "
        "judge are scripted (the reward is the bench's); C2-SYN runs SmolLM2 on vLLM CPU "
        "with the keyword judge",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--c2syn-requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()
    with private_stack() as env, tempfile.TemporaryDirectory() as root:
        result = asyncio.run(run(args, env, Path(root)))
    write_result("research_jobs", result)


if __name__ == "__main__":
    main()
