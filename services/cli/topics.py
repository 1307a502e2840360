"""``alignstream topics create|list``: the topics of ``shared/topics.py`` on the cluster."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from services.cli.progress import console
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings
from shared.topics import all_topics

app = typer.Typer(help="Kafka topics.", no_args_is_help=True)


@app.command()
def create(timeout: float = typer.Option(120.0, help="Seconds to wait for the brokers.")) -> None:
    """Create every missing topic and its dead-letter topic (idempotent; existing topics are
    left as they are). Replication: ALIGNSTREAM_KAFKA_REPLICATION_FACTOR."""
    settings = KafkaSettings()
    created = asyncio.run(ensure_topics(settings, timeout_s=timeout))
    console.print(f"{len(created)} topics created, {len(all_topics()) - len(created)} existed")


@app.command("list")
def list_topics() -> None:
    """The topics the services use: key, partitions, cleanup policy, content."""
    names = KafkaSettings().topics
    table = Table("topic", "key", "partitions", "cleanup", "carries")
    for spec in all_topics():
        table.add_row(names(spec), spec.key, str(spec.partitions), spec.cleanup_policy,
                      spec.description or spec.value.__name__)  # fmt: skip
    console.print(table)
