"""``alignstream memory rebuild``."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.progress import console, progress_bar
from services.ingest.rebuild import rebuild as rebuild_memory
from shared.embedders import EmbedderSettings, make_embedder
from shared.settings import KafkaSettings, RedisSettings

app = command_group("The Redis rule memory.")


@app.command()
def rebuild(
    drop: bool = typer.Option(
        False, help="Empty the memory first (a clean rebuild); otherwise replay over it."
    ),
) -> None:
    """Replay the compacted rule topic into Redis."""

    async def run() -> None:
        with progress_bar() as bar:
            task = bar.add_task("replayed", total=None)
            report = await rebuild_memory(
                KafkaSettings(),
                RedisSettings(),
                make_embedder(EmbedderSettings()),
                drop=drop,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        table = Table("events", "applied", "unchanged", "invalid", "keys dropped")
        table.add_row(
            *(str(n) for n in (report.events, report.applied, report.stale, report.invalid,
                               report.dropped_keys))
        )  # fmt: skip
        console.print(table)

    asyncio.run(run())
