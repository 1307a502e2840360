"""``alignstream prompts load|list``: DRPO prompt sets in Redis, for retrieval to pick from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from pydantic import TypeAdapter, ValidationError
from rich.table import Table

from services.cli.groups import command_group
from services.cli.progress import console
from shared.embedders import EmbedderSettings, make_embedder
from shared.events import TenantId
from shared.prompt_sets import DEFAULT_SET, SHARED, PromptSet, PromptSetStore
from shared.redis import make_redis
from shared.settings import RedisSettings

app = command_group("DRPO prompt sets (system prompt + in-context examples).")


async def store_prompt_set(prompt_set: PromptSet, redis: RedisSettings, owner: str) -> None:
    """Embed the examples' queries with the configured embedder (the one retrieval uses) and
    store the set for ``owner`` (a tenant, or ``SHARED``)."""
    embedder = make_embedder(EmbedderSettings())
    await embedder.start()
    client = make_redis(redis)
    try:
        vectors = await embedder.embed([e.query for e in prompt_set.examples])
        await PromptSetStore(client, redis.key_prefix).put(
            prompt_set, vectors, embedder.name, owner=owner
        )
    finally:
        await embedder.close()
        await client.aclose()


@app.command()
def load(
    system: Path = typer.Option(..., exists=True, dir_okay=False, help="System prompt text."),
    examples: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="DRPO's {query: answer} JSON examples."
    ),
    name: str = typer.Option(DEFAULT_SET, help="Set name (requests pick it by name)."),
    tenant: str | None = typer.Option(
        None, help="The tenant whose requests may use the set; omit for a shared set."
    ),
) -> None:
    """Store a prompt set, e.g. --system ../shared/data/drpo/prompts/mistral-7b-instruct-v0.1.txt
    --examples ../shared/data/drpo/ICL_examples.json. A tenant's set of a name takes precedence over
    the shared set of that name for that tenant's requests; no tenant sees another's."""
    owner = SHARED if tenant is None else _tenant(tenant)
    prompt_set = PromptSet.from_drpo_files(system, examples, name=name)
    asyncio.run(store_prompt_set(prompt_set, RedisSettings(), owner))
    whose = "shared" if tenant is None else f"tenant {tenant}"
    console.print(f"prompt set [bold]{name}[/] ({whose}): {len(prompt_set.system)} chars of "
                  f"system prompt, {len(prompt_set.examples)} examples")  # fmt: skip


_TENANT: TypeAdapter[str] = TypeAdapter(TenantId)


def _tenant(value: str) -> str:
    try:
        return _TENANT.validate_python(value)
    except ValidationError as exc:
        raise typer.BadParameter(f"not a tenant id: {value!r}") from exc


@app.command("list")
def list_sets(
    tenant: str | None = typer.Option(None, help="Also the sets of this tenant."),
) -> None:
    """Prompt sets in Redis: the shared ones, and a tenant's own with --tenant."""
    owners = [SHARED] if tenant is None else [SHARED, _tenant(tenant)]

    async def read() -> list[tuple[str, str, int, str]]:
        settings = RedisSettings()
        client = make_redis(settings)
        store = PromptSetStore(client, settings.key_prefix)
        try:
            rows = []
            for owner in owners:
                for name in await store.names(owner):
                    stored = await store.get(owner, name)
                    if stored is not None:
                        whose = "shared" if owner == SHARED else owner
                        rows.append((name, whose, len(stored.prompt_set.examples),
                                     stored.embedder))  # fmt: skip
            return rows
        finally:
            await client.aclose()

    table = Table("set", "owner", "examples", "embedded by")
    for name, whose, count, embedder in asyncio.run(read()):
        table.add_row(name, whose, str(count), embedder)
    console.print(table)
