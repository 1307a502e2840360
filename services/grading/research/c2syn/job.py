"""``synth course-correction``: C2-SYN through the deployed pipeline.

Requests are taken in chunks. For each request the model answers once plainly and once per cut
of the harmful response (prefilled with a compliance opener, the cut, and a correction
trigger); the judge verifies each synthesized correction (and that the plain answer is
harmless); the ranking gives the pairs, which are appended to ``pairs.jsonl`` in the job's
output folder.

Resuming: after each chunk the file is flushed and, in one Redis transaction, the chunk's pair
digests are marked seen and the cursor (rows done, bytes written, counts) is saved. A resumed
job truncates the file to the saved length and goes on from the cursor, so no pair is lost or
written twice, and a pair seen before (a duplicate row in the input) is not written again.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from services.grading.datasets import DatasetError, dataset_path, read_jsonl
from services.grading.judge.prompts import COURSE_CORRECTION, HARMFUL_ANSWER
from services.grading.research.c2syn.synthesis import (
    corrections,
    harmful_response,
    joined,
    pair_digest,
    pairs,
    rank,
)
from services.grading.research.context import JobContext, ResearchError
from shared import events

JUDGE_CONCURRENCY = 16


MAX_ROWS = 1_000_000
"""Requests one job reads at most (PKU-SafeRLHF has ~300k rows); more is refused, not cut."""
MAX_FILE_BYTES = 2 * 1024**3


def load_rows(
    root: Path, tenant: str, given: str, min_words: int, limit: int | None
) -> list[tuple[str, str]]:
    path = dataset_path(root, tenant, given)
    if not path.is_file():
        raise DatasetError(f"{given}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DatasetError(f"{given}: larger than {MAX_FILE_BYTES} bytes")
    rows: list[tuple[str, str]] = []
    for line_no, row in read_jsonl(path, given):
        if line_no > MAX_ROWS:
            raise DatasetError(f"{given}:{line_no}: more than {MAX_ROWS} rows")
        prompt = row.get("prompt")
        if not isinstance(prompt, str):
            raise DatasetError(f"{given}:{line_no}: expected a PKU-SafeRLHF row with prompt")
        response = harmful_response(row, min_words)
        if response is not None and prompt.strip():
            rows.append((prompt, response))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DatasetError(f"{given}: no row with an unsafe response over {min_words} words")
    return rows


class Synthesizer:
    def __init__(self, ctx: JobContext, spec: events.CourseCorrectionSynthSpec) -> None:
        self.ctx, self.spec = ctx, spec
        self._slots = asyncio.Semaphore(JUDGE_CONCURRENCY)

    def _request(self, prompt: str, prefill: str | None) -> events.ChatRequest:
        return events.ChatRequest(
            tenant=self.ctx.tenant,
            messages=(events.ChatMessage(role=events.Role.USER, content=prompt),),
            strategy=events.Strategy.BASE,
            prefill=prefill,
            params=events.GenerationParams(max_tokens=self.spec.max_tokens, seed=self.spec.seed),
            metadata={"research_job": self.ctx.job.job_id},
        )

    async def _verified(self, prompt_name: str, **fields: str) -> bool:
        if not self.spec.verify:
            return True
        judge = self.ctx.need_judge()
        prompt = COURSE_CORRECTION if prompt_name == "correction" else HARMFUL_ANSWER
        async with self._slots:
            verdict = await judge.judge(prompt, **fields)
        self.ctx.tally.add(verdict.cached)
        return verdict.label in ("yes", "positive")

    async def chunk(self, rows: list[tuple[str, str]]) -> tuple[list[dict[str, str]], Counter[str]]:
        """The pairs of a chunk of requests, and counts (requests used, syntheses rejected)."""
        plans = [(p, r, corrections(p, r, self.spec.corrections, self.spec.seed)) for p, r in rows]
        requests = []
        for prompt, _, cuts in plans:
            requests.append(self._request(prompt, None))
            requests += [self._request(prompt, c.prefill) for c in cuts]
        replies = await self.ctx.pipeline.ask(requests, timeout_s=self.ctx.timeout_s)
        counts: Counter[str] = Counter()
        out: list[dict[str, str]] = []
        position = 0
        for prompt, harmful, cuts in plans:
            own_reply = replies[requests[position].request_id]
            asked = requests[position + 1 : position + 1 + len(cuts)]
            position += 1 + len(cuts)
            own = own_reply.text.strip() if own_reply.ok else ""
            texts: dict[int, tuple[str, str]] = {}  # position -> (prefill, continuation)
            for cut, request in zip(cuts, asked, strict=True):
                reply = replies[request.request_id]
                if reply.ok and reply.text.strip():
                    texts[cut.position] = (cut.prefill, reply.text)
                else:
                    counts["errors"] += 1
            own_ok, *corrections_ok = await asyncio.gather(
                self._verified("answer", prompt=prompt, answer=own) if own else _false(),
                *(
                    self._verified("correction", prompt=prompt, prefill=prefill, continuation=text)
                    for prefill, text in texts.values()
                ),
            )
            if own and not own_ok:
                counts["rejected_own"] += 1
            corrected: dict[int, str] = {}
            for (n, (prefill, text)), ok in zip(texts.items(), corrections_ok, strict=True):
                if ok:
                    corrected[n] = joined(prefill, text)
                else:
                    counts["rejected_corrections"] += 1
            own = own if own_ok else ""
            ranked = rank(own or None, corrected, harmful)
            request_pairs = pairs(prompt, ranked)
            counts[f"pairs_per_request:{len(request_pairs)}"] += 1
            counts["corrections_kept"] += len(corrected)
            out += request_pairs
        return out, counts


def _truncate(path: Path, size: int) -> None:
    with path.open("ab") as handle:
        handle.truncate(size)


def _append(path: Path, data: bytes) -> int:
    """Append and make it durable before the cursor that covers it is committed; the new size."""
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        return handle.tell()


async def _false() -> bool:
    return False


async def synthesize(
    ctx: JobContext, spec: events.CourseCorrectionSynthSpec
) -> dict[str, JsonValue]:
    if spec.verify:
        ctx.need_judge()
    try:
        rows = await asyncio.to_thread(
            load_rows, ctx.data_root, ctx.tenant, spec.dataset, spec.min_words, spec.limit
        )
    except DatasetError as exc:
        raise ResearchError(str(exc)) from exc
    folder = ctx.output_folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pairs.jsonl"
    cursor = await ctx.checkpoints.get("cursor")
    state: dict[str, Any] = (
        cursor
        if isinstance(cursor, dict)
        else {"rows": 0, "bytes": 0, "pairs": 0, "duplicates": 0, "counts": {}}
    )
    resumed_at = int(state["rows"])
    # Drop what a crash wrote after the last commit.
    await asyncio.to_thread(_truncate, path, int(state["bytes"]))
    synth = Synthesizer(ctx, spec)
    started, written_now = time.monotonic(), 0
    counts: Counter[str] = Counter(state["counts"])
    for start in range(int(state["rows"]), len(rows), spec.chunk):
        chunk_rows = rows[start : start + spec.chunk]
        found, chunk_counts = await synth.chunk(chunk_rows)
        digests = [pair_digest(row) for row in found]
        fresh = await ctx.checkpoints.unseen(digests)
        keep: dict[str, dict[str, str]] = {}
        for row, digest, new in zip(found, digests, fresh, strict=True):
            if new and digest not in keep:
                keep[digest] = row
        duplicates = len(found) - len(keep)
        lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in keep.values())
        size = await asyncio.to_thread(_append, path, lines.encode("utf-8"))
        counts.update(chunk_counts)
        state = {
            "rows": start + len(chunk_rows),
            "bytes": size,
            "pairs": int(state["pairs"]) + len(keep),
            "duplicates": int(state["duplicates"]) + duplicates,
            "counts": dict(counts),
        }
        await ctx.checkpoints.commit(keep.keys(), {"cursor": state})
        written_now += len(keep)
        await ctx.report(f"{state['pairs']} pairs", state["rows"], len(rows))
    elapsed = time.monotonic() - started
    per_request = {
        k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("pairs_per_request:")
    }
    return {
        "output": ctx.output_name(path),
        "requests": len(rows),
        "resumed_at_request": resumed_at,
        "pairs": int(state["pairs"]),
        "duplicates_dropped": int(state["duplicates"]),
        "pairs_per_request": dict(sorted(per_request.items(), key=lambda kv: int(kv[0]))),
        "corrections_kept": counts["corrections_kept"],
        "rejected_corrections": counts["rejected_corrections"],
        "rejected_own_answers": counts["rejected_own"],
        "error_replies": counts["errors"],
        "pairs_per_s": round(written_now / elapsed, 3) if elapsed > 0 else 0.0,
    }
