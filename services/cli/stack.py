"""``alignstream stack up|down|status``: the local broker and Redis."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shared.localstack import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_REDIS_PORT,
    DEFAULT_STATE_DIR,
    LocalStack,
    StackError,
)

app = typer.Typer(help="Start, stop and inspect the local Kafka-protocol broker and Redis.")
console = Console()

StateDir = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="PID files, logs and Redis data.")
KafkaPort = typer.Option(DEFAULT_KAFKA_PORT, "--kafka-port")
RedisPort = typer.Option(DEFAULT_REDIS_PORT, "--redis-port")


def _print(stack: LocalStack) -> bool:
    table = Table("server", "address", "pid", "running", "healthy")
    statuses = stack.status()
    for status in statuses:
        table.add_row(
            status.name,
            status.address,
            str(status.pid or "-"),
            "yes" if status.running else "no",
            "[green]yes[/]" if status.healthy else "[red]no[/]",
        )
    console.print(table)
    return all(status.healthy for status in statuses)


@app.command()
def up(
    state_dir: Path = StateDir, kafka_port: int = KafkaPort, redis_port: int = RedisPort
) -> None:
    """Start both servers (if not running) and wait until they are healthy."""
    stack = LocalStack(state_dir, kafka_port=kafka_port, redis_port=redis_port)
    try:
        stack.up()
    except StackError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    _print(stack)
    for name, value in stack.environment().items():
        console.print(f"export {name}={value}")


@app.command()
def down(
    state_dir: Path = StateDir, kafka_port: int = KafkaPort, redis_port: int = RedisPort
) -> None:
    """Stop the servers this stack started (by their PID files)."""
    LocalStack(state_dir, kafka_port=kafka_port, redis_port=redis_port).down()
    console.print("stopped")


@app.command()
def status(
    state_dir: Path = StateDir, kafka_port: int = KafkaPort, redis_port: int = RedisPort
) -> None:
    """Show whether each server runs and answers; exit 1 unless both are healthy."""
    if not _print(LocalStack(state_dir, kafka_port=kafka_port, redis_port=redis_port)):
        raise typer.Exit(1)
