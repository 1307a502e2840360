"""``alignstream chat``: ask one question through Kafka and print the grounded answer."""

from __future__ import annotations

import asyncio

import typer
from rich.panel import Panel
from rich.table import Table

from services.cli.progress import console
from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings


def show_answer(response: events.ChatResponse) -> None:
    if not response.ok:
        assert response.error is not None
        console.print(f"[red]{response.error.kind.value}: {response.error.message}[/]")
        return
    timings = response.timings
    console.print(
        Panel(
            response.text.strip() or "[dim](empty answer)[/]",
            title=f"{response.model} ({response.strategy.value})",
            subtitle=f"{response.usage.completion_tokens} tokens, total {timings.total_ms:.0f} ms",
        )
    )
    if response.cited_rules:
        table = Table("cited rule", "version", show_edge=False)
        for ref in response.cited_rules:
            table.add_row(ref.rule_id, str(ref.version))
        console.print(table)


def chat(
    question: str,
    tenant: str = typer.Option(..., help="Whose rules apply."),
    strategy: events.Strategy = typer.Option(events.Strategy.OPO),
    jurisdiction: list[str] = typer.Option([], help="Repeatable; global rules always apply."),
    max_tokens: int = typer.Option(256, min=1),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the answer."),
) -> None:
    """Publish a question to the chat topic, wait for the answer and print it with its rules."""
    request = events.ChatRequest(
        tenant=tenant,
        messages=(events.ChatMessage(role=events.Role.USER, content=question),),
        strategy=strategy,
        scope=events.RuleScope(jurisdictions=tuple(jurisdiction)),
        params=events.GenerationParams(max_tokens=max_tokens),
    )

    async def run() -> events.ChatResponse:
        async with AlignstreamClient(KafkaSettings()) as client:
            answers = await client.ask([request], timeout_s=timeout)
        return answers[request.request_id]

    try:
        response = asyncio.run(run())
    except TimeoutError as exc:
        console.print("[red]no answer in time: are the services running (alignstream serve)?[/]")
        raise typer.Exit(1) from exc
    show_answer(response)
    if not response.ok:
        raise typer.Exit(1)
