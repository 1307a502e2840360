"""``alignstream jurisdictions publish|show``: a tenant's jurisdiction tree."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.table import Table

from services.cli.groups import command_group
from services.cli.params import tenant_option
from services.cli.progress import console
from services.cli.rules import publish_events
from shared.events import JurisdictionTree
from shared.memory.trees import JurisdictionStore
from shared.redis import make_redis
from shared.settings import RedisSettings

app = command_group("Declare and show jurisdiction trees.")

MAX_TREE_FILE_BYTES = 16 << 20


def read_tree_file(path: Path, *, tenant: str, version: int | None = None) -> JurisdictionTree:
    """A tree file: ``{"nodes": ["US", {"path": "US/CA", "aliases": ["California"]}],
    "default_scope": ["US"]}``. Raises ValueError naming the file (and line for bad JSON)."""
    if path.stat().st_size > MAX_TREE_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_TREE_FILE_BYTES} bytes")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'nodes'")
    nodes = [{"path": n} if isinstance(n, str) else n for n in data.get("nodes", [])]
    try:
        return JurisdictionTree.model_validate(
            {
                "tenant": tenant,
                "version": version or data.get("version") or int(time.time() * 1000),
                "nodes": nodes,
                "default_scope": data.get("default_scope", []),
            }
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'tree'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise ValueError(f"{path}: {problems}") from exc


@app.command()
def publish(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Tree as JSON."),
    tenant: str = tenant_option("Whose tree it is."),
    version: int | None = typer.Option(None, min=1, help="Default: the file's, else now (ms)."),
    wait: bool = typer.Option(False, help="Wait until retrieval can use it."),
    timeout: float = typer.Option(120.0, help="Seconds to wait with --wait."),
) -> None:
    """Publish a tenant's jurisdiction tree (replaces an older version)."""
    try:
        tree = read_tree_file(file, tenant=tenant, version=version)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    asyncio.run(publish_events([tree], wait, timeout))
    console.print(f"tree of {tenant}: {len(tree.nodes)} nodes, version {tree.version}, "
                  f"default scope {', '.join(tree.default_scope) or '(global only)'}")  # fmt: skip


@app.command()
def show(tenant: str = tenant_option("Whose tree to show.")) -> None:
    """The tenant's stored tree (as retrieval uses it)."""

    async def read() -> JurisdictionTree | None:
        redis = RedisSettings()
        client = make_redis(redis)
        try:
            return await JurisdictionStore(client, redis.key_prefix).get(tenant)
        finally:
            await client.aclose()

    tree = asyncio.run(read())
    if tree is None:
        console.print(f"{tenant} has declared no tree: its rules' jurisdictions are the nodes, "
                      "and a question that names none sees global rules only")  # fmt: skip
        raise typer.Exit(1)
    table = Table("node", "aliases", title=f"{tenant}: version {tree.version}, "
                  f"default scope {', '.join(tree.default_scope) or '(global only)'}")  # fmt: skip
    for node in tree.nodes[:200]:
        table.add_row(node.path, ", ".join(node.aliases))
    console.print(table)
    if len(tree.nodes) > 200:
        console.print(f"... and {len(tree.nodes) - 200} more nodes")
