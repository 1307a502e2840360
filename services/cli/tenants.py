"""``alignstream tenants create-key|keys|revoke``: the API keys that map a bearer to a tenant
(the gateway's front door). A key is shown once, when it is created; Redis keeps its hash."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.table import Column, Table

from services.cli.groups import command_group
from services.cli.params import tenant_option
from services.cli.progress import console
from shared.settings import RedisSettings
from shared.tenants import ApiKey, ApiKeys

app = command_group("Tenants' API keys.")

T = TypeVar("T")


def _with_keys(work: Callable[[ApiKeys], Awaitable[T]]) -> T:
    async def run() -> T:
        keys = ApiKeys.from_settings(RedisSettings())
        try:
            await keys.open()
            return await work(keys)
        finally:
            await keys.close()

    return asyncio.run(run())


@app.command("create-key")
def create_key(
    tenant: str = tenant_option("The tenant the key speaks for."),
    admin: bool = typer.Option(False, help="May also change the tenant's rules (/v1/rules)."),
    label: str = typer.Option("", help="A note to recognise the key by."),
    scope: str = typer.Option("", help="Default jurisdictions, comma-separated (tree nodes)."),
    rate_limit: float | None = typer.Option(
        None, help="Requests per second; unset: the gateway's default (20/s)."
    ),
) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    default_scope = [s.strip() for s in scope.split(",") if s.strip()]
    secret, key = _with_keys(lambda keys: keys.create(tenant, admin=admin, label=label,
                                                      default_scope=default_scope,
                                                      rate_limit_per_s=rate_limit))  # fmt: skip
    console.print(f"API key {key.key_id} for {key.tenant}{' (admin)' if key.admin else ''}; "
                  "shown once, keep it now:")  # fmt: skip
    typer.echo(secret)


@app.command("keys")
def list_keys(
    tenant: str | None = tenant_option("Only this tenant's keys.", required=False),
) -> None:
    """The API keys (never their secrets), revoked ones included."""
    found = _with_keys(lambda keys: keys.of_tenant(tenant))
    table = Table("tenant", "admin", "scope", "rate/s", "label", "created", "revoked")
    table.columns.insert(0, Column("key id", no_wrap=True, min_width=12))  # copied by hand
    for key in found:
        rate = f"{key.rate_limit_per_s:g}" if key.rate_limit_per_s else ""
        table.add_row(key.key_id, key.tenant, "yes" if key.admin else "",
                      ",".join(key.default_scope), rate, key.label, _when(key.created_at),
                      _when(key.revoked_at))  # fmt: skip
    console.print(table)


@app.command()
def revoke(
    key_id: str = typer.Argument(..., help="The key's id (see `tenants keys`)."),
    tenant: str | None = tenant_option("Refuse unless the key is this tenant's.", required=False),
) -> None:
    """Revoke a key: it never verifies again (it stays listed, with when)."""
    key: ApiKey = _with_keys(lambda keys: keys.revoke(key_id, tenant=tenant))
    console.print(f"API key {key.key_id} of {key.tenant} revoked")


def _when(at: float | None) -> str:
    return "" if at is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(at))
