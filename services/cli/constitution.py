"""``alignstream constitution discover``: IterAlign's loop on the live pipeline."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.progress import console
from services.grading.datasets import DatasetError
from services.grading.discovery.loop import DiscoveryReport, discover
from services.grading.discovery.principles import load_prompts
from services.grading.judge.client import JudgeError, judge_from_env
from services.grading.report import pct
from shared import events
from shared.client import AlignstreamClient
from shared.embedders import EmbedderSettings, make_embedder
from shared.memory.schema import RuleSchema
from shared.memory.search import RuleSearcher
from shared.settings import KafkaSettings, RedisSettings

app = command_group("Principles (constitutions) that steer the answers.")


async def _discover(
    prompts: list[str],
    tenant: str,
    *,
    holdout: float,
    status: events.RuleStatus,
    max_principles: int,
    similarity: float,
    seed: int,
) -> DiscoveryReport:
    redis_settings = RedisSettings()
    embedder = make_embedder(EmbedderSettings())
    async with judge_from_env(redis_settings) as (judge, redis):
        await embedder.start()
        schema = RuleSchema(redis_settings.key_prefix, embedder.dim, embedder.name)
        try:
            async with AlignstreamClient(KafkaSettings()) as client:
                return await discover(
                    client, judge, embedder, RuleSearcher(redis, schema, ef_runtime=100),
                    tenant, prompts, holdout=holdout, seed=seed, status=status,
                    max_principles=max_principles, similarity=similarity,
                    on_stage=lambda stage: console.print(f"[dim]{stage}[/]"),
                )  # fmt: skip
        finally:
            await embedder.close()


@app.command("discover")
def discover_command(
    prompts: Path = typer.Option(
        ...,
        exists=True,
        dir_okay=False,
        help="Red-team prompts: one per line, or JSONL with prompt.",
    ),
    tenant: str = typer.Option(..., help="Whose memory receives the principles."),
    holdout: float = typer.Option(0.3, min=0.05, max=0.95, help="Share kept for before/after."),
    status: events.RuleStatus = typer.Option(
        events.RuleStatus.PENDING,
        help="pending: an admin activates them; active: they steer the next answers at once.",
    ),
    max_principles: int = typer.Option(20, min=1),
    similarity: float = typer.Option(
        0.85, min=0.0, max=1.0, help="Drop a principle this similar to another or to a rule."
    ),
    seed: int = typer.Option(0),
    out: Path | None = typer.Option(None, help="Write the report as JSON."),
) -> None:
    """Red-team -> judge -> proposed principles -> rule events -> harmlessness before/after."""
    try:
        loaded = load_prompts(prompts)
        report = asyncio.run(_discover(loaded, tenant, holdout=holdout, status=status,
                                       max_principles=max_principles, similarity=similarity,
                                       seed=seed))  # fmt: skip
    except (DatasetError, JudgeError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    before, after = report.rate(report.before), report.rate(report.after)
    table = Table("held-out prompts", "harmless %", "95% CI", title="harmlessness, judged")
    table.add_row(
        f"before ({report.held_out})", pct(before[0]), f"{pct(before[1])}-{pct(before[2])}"
    )
    table.add_row("after", pct(after[0]), f"{pct(after[1])}-{pct(after[2])}")
    console.print(table)
    console.print(f"training prompts answered harmfully: {report.train_harmful}/{report.train}; "
                  f"principles proposed {report.proposed}, duplicates dropped {report.duplicates}, "
                  f"published {len(report.published)} ({status.value}); "
                  f"paired p = {report.p_value:.3g}")  # fmt: skip
    for rule in report.published:
        console.print(f"  {rule.rule_id}: {rule.text}")
    if out is not None:
        out.write_text(json.dumps({
            "train": report.train, "held_out": report.held_out,
            "train_harmful": report.train_harmful,
            "harmless_before": before, "harmless_after": after, "p_value": report.p_value,
            "proposed": report.proposed, "duplicates": report.duplicates,
            "published": [r.model_dump(mode="json") for r in report.published],
        }, indent=2) + "\n")  # fmt: skip
