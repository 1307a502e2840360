"""``alignstream topics create|check|list|asyncapi``: the topics of ``shared/topics.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.progress import console, errors
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings
from shared.topic_checks import TopicProblem, check_topics
from shared.topics import all_topics

app = command_group("Kafka topics.")


def _report(problems: list[TopicProblem]) -> None:
    for problem in problems:
        errors.print(f"{problem}", style="red" if problem.critical else "yellow", markup=False)


@app.command()
def create(
    timeout: float = typer.Option(120.0, help="Seconds to wait for the brokers."),
    strict: bool = typer.Option(
        False,
        help="Exit 1 on any difference from the specification, partition counts included "
        "(keyed order and the autoscalers' caps rely on them); the chart's topics Job uses it.",
    ),
) -> None:
    """Create every missing topic and its dead-letter topic (idempotent), then report topics
    that differ from their specification (existing topics are never changed). Replication:
    ALIGNSTREAM_KAFKA_REPLICATION_FACTOR."""
    settings = KafkaSettings()

    async def run() -> tuple[list[str], list[TopicProblem]]:
        created = await ensure_topics(settings, timeout_s=timeout)
        return created, await check_topics(settings)

    created, problems = asyncio.run(run())
    console.print(f"{len(created)} topics created, {len(all_topics()) - len(created)} existed")
    _report(problems)
    if any(p.critical or strict for p in problems):
        raise typer.Exit(1)


@app.command()
def check() -> None:
    """Compare every topic with its specification (partitions, cleanup policy); exit 1 when
    one is missing or differs."""
    problems = asyncio.run(check_topics(KafkaSettings()))
    _report(problems)
    if problems:
        raise typer.Exit(1)
    console.print(f"all {len(all_topics())} topics match their specification")


@app.command("list")
def list_topics() -> None:
    """The topics the services use: key, partitions, cleanup policy, content."""
    names = KafkaSettings().topics
    table = Table("topic", "key", "partitions", "cleanup", "carries")
    for spec in all_topics():
        carries = spec.description or " | ".join(m.__name__ for m in spec.value_models)
        table.add_row(names(spec), spec.key, str(spec.partitions), spec.cleanup_policy, carries)
    console.print(table)


@app.command()
def asyncapi(
    out: Path | None = typer.Option(None, help="Write the document here (default: stdout)."),
) -> None:
    """The topics' contract as an AsyncAPI 3.0 document (JSON), generated from the services'
    subscribers and publishers; docs/asyncapi.json is this document."""
    from services.asyncapi import rendered

    text = rendered()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
