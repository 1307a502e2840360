"""``alignstream constitution discover``: IterAlign's rounds on the live pipeline (a research
job of the grading service)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.params import tenant_option
from services.cli.progress import console
from services.cli.research import research_job, staged, submit
from services.grading.report import pct
from shared import events

app = command_group("Principles (constitutions) that steer the answers.")

UNTIL_STABLE_ROUNDS = 10


@app.command("discover")
def discover_command(
    prompts: str = typer.Option(
        ..., help="Red-team prompts: one per line, or JSONL with prompt (local files are staged)."
    ),
    tenant: str = tenant_option("Whose memory receives the principles."),
    rounds: int | None = typer.Option(None, min=1, max=50, help="Most rounds (default 1)."),
    until_stable: bool = typer.Option(
        False,
        help=f"Go on until a round finds nothing new (at most --rounds, default "
        f"{UNTIL_STABLE_ROUNDS}).",
    ),
    holdout: float = typer.Option(0.3, min=0.05, max=0.95, help="Share kept for before/after."),
    status: events.RuleStatus = typer.Option(
        events.RuleStatus.PENDING,
        help="pending: an admin activates them; active: they steer the next answers at once.",
    ),
    max_principles: int = typer.Option(20, min=1, help="Per round."),
    similarity: float = typer.Option(
        0.85, min=0.0, max=1.0, help="Drop a principle this similar to another or to a rule."
    ),
    seed: int = typer.Option(0),
    job_id: str | None = typer.Option(None, help="Reuse to resume a stopped job."),
    out: Path | None = typer.Option(None, help="Write the report as JSON."),
    detach: bool = typer.Option(False, help="Submit and return; the job runs on."),
    timeout: float = typer.Option(24 * 3600.0, help="Seconds to follow the job."),
) -> None:
    """Red-team -> judge -> proposed principles -> rule events -> harmlessness before/after,
    round after round (IterAlign)."""
    limit = rounds or (UNTIL_STABLE_ROUNDS if until_stable else 1)
    spec = events.ConstitutionDiscoverSpec(
        prompts=staged(tenant, prompts),
        rounds=limit,
        holdout=holdout,
        status=status,
        max_principles=max_principles,
        similarity=similarity,
        seed=seed,
    )
    job = research_job(tenant, spec, job_id)
    final = submit(job, detach=detach, timeout_s=timeout)
    if final is None:
        return
    result: dict[str, Any] = dict(final.result)
    table = Table(
        "round",
        "harmful (train)",
        "proposed",
        "duplicates",
        "published",
        "held-out harmless % before",
        "after",
        "95% CI after",
        "p",
        title=f"harmlessness, judged ({result.get('held_out')} held-out prompts)",
    )
    for entry in result.get("rounds", []):
        before, after = entry["harmless_before"], entry["harmless_after"]
        table.add_row(
            str(entry["round"]),
            str(entry["train_harmful"]),
            str(entry["proposed"]),
            str(entry["duplicates"]),
            str(len(entry["published"])),
            pct(before[0]),
            pct(after[0]),
            f"{pct(after[1])}-{pct(after[2])}",
            f"{entry['p_value']:.3g}",
        )
        for rule in entry["published"]:
            console.print(f"  round {entry['round']}: {rule['rule_id']}: {rule['text']}")
    console.print(table)
    console.print(
        f"{result.get('rounds_run')} round(s); stopped: {result.get('stop_reason')}; "
        f"principles published: {result.get('principles')} ({status.value})"
    )
    if out is not None:
        out.write_text(json.dumps(result, indent=2) + "\n")
