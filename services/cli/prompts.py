"""``alignstream prompts load|list``: DRPO prompt sets in Redis, for retrieval to pick from."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from services.cli.progress import console
from shared.embedders import EmbedderSettings, make_embedder
from shared.prompt_sets import DEFAULT_SET, PromptSet, PromptSetStore
from shared.redis import make_redis
from shared.settings import RedisSettings

app = typer.Typer(help="DRPO prompt sets (system prompt + in-context examples).",
                  no_args_is_help=True)  # fmt: skip


async def store_prompt_set(prompt_set: PromptSet, redis: RedisSettings) -> None:
    """Embed the examples' queries with the configured embedder (the one retrieval uses) and
    store the set."""
    embedder = make_embedder(EmbedderSettings())
    await embedder.start()
    client = make_redis(redis)
    try:
        vectors = await embedder.embed([e.query for e in prompt_set.examples])
        await PromptSetStore(client, redis.key_prefix).put(prompt_set, vectors, embedder.name)
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
) -> None:
    """Store a prompt set, e.g. ``--system ../shared/data/drpo/prompts/mistral.txt --examples
    ../shared/data/drpo/ICL_examples.json``."""
    prompt_set = PromptSet.from_drpo_files(system, examples, name=name)
    asyncio.run(store_prompt_set(prompt_set, RedisSettings()))
    console.print(f"prompt set [bold]{name}[/]: {len(prompt_set.system)} chars of system prompt, "
                  f"{len(prompt_set.examples)} examples")  # fmt: skip


@app.command("list")
def list_sets() -> None:
    """Prompt sets in Redis."""

    async def read() -> list[tuple[str, int, str]]:
        settings = RedisSettings()
        client = make_redis(settings)
        store = PromptSetStore(client, settings.key_prefix)
        try:
            rows = []
            for name in await store.names():
                stored = await store.get(name)
                if stored is not None:
                    rows.append((name, len(stored.prompt_set.examples), stored.embedder))
            return rows
        finally:
            await client.aclose()

    table = Table("set", "examples", "embedded by")
    for name, count, embedder in asyncio.run(read()):
        table.add_row(name, str(count), embedder)
    console.print(table)
