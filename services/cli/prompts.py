"""``alignstream prompts load|list|optimize``: DRPO prompt sets in Redis, for retrieval to pick
from, and DRPO's search for a better one (a research job of the grading service)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from services.cli.groups import command_group
from services.cli.params import tenant_option
from services.cli.progress import console
from services.cli.research import copy_output, research_job, staged, submit
from shared import events
from shared.embedders import EmbedderSettings, make_embedder
from shared.prompt_sets import DEFAULT_SET, SHARED, PromptSet, PromptSetStore
from shared.redis import make_redis
from shared.settings import RedisSettings

app = command_group("DRPO prompt sets (system prompt + in-context examples).")


async def store_prompt_set(prompt_set: PromptSet, redis: RedisSettings, owner: str) -> None:
    """Embed the examples' queries with the configured embedder (the one retrieval uses) and
    store the set for ``owner`` (a tenant, or ``SHARED``)."""
    client = make_redis(redis)
    embedder = make_embedder(EmbedderSettings())
    try:
        await client.ping()  # a wrong REDIS_URL fails now, not after the model has loaded
        await embedder.start()
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
    tenant: str | None = tenant_option(
        "The tenant whose requests may use the set; omit for a shared set.", required=False
    ),
) -> None:
    """Store a prompt set, e.g. --system ../shared/data/drpo/prompts/mistral-7b-instruct-v0.1.txt
    --examples ../shared/data/drpo/ICL_examples.json. A tenant's set of a name takes precedence over
    the shared set of that name for that tenant's requests; no tenant sees another's."""
    owner = tenant or SHARED
    prompt_set = PromptSet.from_drpo_files(system, examples, name=name)
    asyncio.run(store_prompt_set(prompt_set, RedisSettings(), owner))
    whose = "shared" if tenant is None else f"tenant {tenant}"
    console.print(
        f"prompt set [bold]{name}[/] ({whose}): {len(prompt_set.system)} chars of "
        f"system prompt, {len(prompt_set.examples)} examples"
    )


@app.command("list")
def list_sets(
    tenant: str | None = tenant_option("Also the sets of this tenant.", required=False),
) -> None:
    """Prompt sets in Redis: the shared ones, and a tenant's own with --tenant."""
    owners = [SHARED] if tenant is None else [SHARED, tenant]

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
                        rows.append((name, whose, len(stored.prompt_set.examples), stored.embedder))
            return rows
        finally:
            await client.aclose()

    table = Table("set", "owner", "examples", "embedded by")
    for name, whose, count, embedder in asyncio.run(read()):
        table.add_row(name, whose, str(count), embedder)
    console.print(table)


@app.command()
def optimize(
    seeds: list[str] = typer.Option(
        ...,
        "--seeds",
        help="Seed query files (repeat): DRPO's alpaca/LIMA JSON, mal_train.txt, "
        "or JSONL with prompt; local files are staged into the grading data root.",
    ),
    tenant: str = tenant_option("Whose prompt sets the search reads and writes."),
    start_set: str = typer.Option(DEFAULT_SET, help="The prompt set the search starts from."),
    output_set: str = typer.Option("drpo-optimized", help="Load the best prompt set as this."),
    beam: int = typer.Option(2, min=1, max=8),
    actions: int = typer.Option(3, min=1, max=8, help="Rewrites per beam node and level."),
    depth: int = typer.Option(20, min=1, max=50),
    queries_per_level: int = typer.Option(1, min=1, max=64),
    holdout: float = typer.Option(0.2, min=0.01, max=0.99, help="Share of seeds held out."),
    holdout_limit: int = typer.Option(40, min=1, help="Most held-out queries scored per level."),
    max_tokens: int = typer.Option(256, min=1),
    seed: int = typer.Option(0),
    job_id: str | None = typer.Option(None, help="Reuse to resume a stopped job."),
    out: Path | None = typer.Option(None, help="Write the levels (DRPO's JSON) here."),
    detach: bool = typer.Option(False, help="Submit and return; the job runs on."),
    timeout: float = typer.Option(24 * 3600.0, help="Seconds to follow the job."),
) -> None:
    """DRPO: beam search for the deployed model's alignment system prompt. The model answers
    through the pipeline with each candidate, the judge scores 2-5 aspects per query, the
    optimizer model (ALIGNSTREAM_OPTIMIZER_*, else the judge) rewrites the prompt."""
    spec = events.PromptOptimizeSpec(
        seeds=tuple(staged(tenant, s) for s in seeds),
        start_set=start_set,
        output_set=output_set,
        beam=beam,
        actions=actions,
        depth=depth,
        queries_per_level=queries_per_level,
        holdout=holdout,
        holdout_limit=holdout_limit,
        max_tokens=max_tokens,
        seed=seed,
    )
    job = research_job(tenant, spec, job_id)
    final = submit(job, detach=detach, timeout_s=timeout)
    if final is None:
        return
    result: dict[str, Any] = dict(final.result)
    table = Table("level", "held-out reward", "95% CI", "train reward", title="DRPO search")
    for name, level in result.get("levels", {}).items():
        evaluation = level["Evaluation of the prompt"]
        held = evaluation["held_out"]
        table.add_row(
            name,
            f"{held['mean']:.2f}",
            f"{held['ci_low']:.2f}-{held['ci_high']:.2f}",
            f"{evaluation['train_reward']:.2f}",
        )
    console.print(table)
    console.print(
        f"reward {result.get('reward_start')} -> {result.get('reward_best')} "
        f"(level {result.get('best_level')}); loaded as prompt set "
        f"[bold]{result.get('output_set')}[/] for {tenant}; judged calls saved by "
        f"resuming: {result.get('judged_calls_saved')}"
    )
    copy_output(tenant, result, out)
