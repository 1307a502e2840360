"""``alignstream stack up|down|status``: the local broker and Redis.

The ports ``up`` used are remembered in the state folder; ``status``, ``down`` and ``demo``
find the same servers without repeating them.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.progress import console, errors
from shared.devstack.servers import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_REDIS_PORT,
    DEFAULT_S3_PORT,
    DEFAULT_STATE_DIR,
    LocalStack,
)

app = command_group("Start, stop and inspect the local Kafka-protocol broker and Redis.")

StateDir = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="PID files, logs and Redis data.")
KafkaPort = typer.Option(
    None, "--kafka-port", help=f"Default: the port last used, else {DEFAULT_KAFKA_PORT}."
)
RedisPort = typer.Option(
    None, "--redis-port", help=f"Default: the port last used, else {DEFAULT_REDIS_PORT}."
)
S3Port = typer.Option(
    None,
    "--s3-port",
    help=f"Durable stack: the first of 8 ports in a row for SeaweedFS (default: the last used, "
    f"else {DEFAULT_S3_PORT}).",
)
Durable = typer.Option(
    None,
    "--durable/--in-memory",
    help="Durable: the broker stores to a local S3 server (SeaweedFS, ports "
    f"{DEFAULT_S3_PORT}-{DEFAULT_S3_PORT + 7}) and keeps every record across a restart. "
    "Default: as last started, else in memory.",
)


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
    state_dir: Path = StateDir,
    kafka_port: int | None = KafkaPort,
    redis_port: int | None = RedisPort,
    durable: bool | None = Durable,
    s3_port: int | None = S3Port,
    redis_cluster: bool | None = typer.Option(
        None,
        "--redis-cluster/--single-redis",
        help="A Redis Cluster of 3 primaries and 3 replicas (Valkey with the search modules) on "
        "the Redis port and the five after it. Default: as last started, else one Redis.",
    ),
    brokers: int | None = typer.Option(
        None,
        "--brokers",
        min=1,
        max=9,
        help="Tansu brokers sharing the durable store, behind one address on the Kafka port "
        "(the brokers on the ports after it); implies --durable. Default: as last started, "
        "else 1.",
    ),
    env: bool = typer.Option(
        False, "--env", help='Print only export lines: eval "$(alignstream stack up --env)".'
    ),
) -> None:
    """Start the servers (if not running) and wait until they are healthy."""
    stack = LocalStack.remembered(
        state_dir, kafka_port=kafka_port, redis_port=redis_port, durable=durable, s3_port=s3_port,
        redis_cluster=redis_cluster, brokers=brokers,
    )  # fmt: skip
    stack.up()  # StackError: one line and a hint (services/cli/failures.py)
    if env:
        for name, value in stack.environment().items():
            console.print(f"export {name}={value}", markup=False, highlight=False)
        return
    _print(stack)
    if (stack.kafka.port, stack.redis.port) != (DEFAULT_KAFKA_PORT, DEFAULT_REDIS_PORT):
        again = (
            "" if state_dir == DEFAULT_STATE_DIR else f" --state-dir {shlex.quote(str(state_dir))}"
        )
        errors.print("other ports than the defaults: point the commands at them with "
                     f'eval "$(alignstream stack up{again} --env)"', markup=False)  # fmt: skip


@app.command()
def down(
    state_dir: Path = StateDir,
    kafka_port: int | None = KafkaPort,
    redis_port: int | None = RedisPort,
) -> None:
    """Stop the servers this stack started (by their PID files)."""
    LocalStack.remembered(state_dir, kafka_port=kafka_port, redis_port=redis_port).down()
    console.print("stopped")


@app.command()
def status(
    state_dir: Path = StateDir,
    kafka_port: int | None = KafkaPort,
    redis_port: int | None = RedisPort,
) -> None:
    """Show whether each server runs and answers; exit 1 unless all are healthy."""
    stack = LocalStack.remembered(state_dir, kafka_port=kafka_port, redis_port=redis_port)
    if not _print(stack):
        raise typer.Exit(1)
