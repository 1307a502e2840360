"""``alignstream chat``: ask one question through Kafka and print the grounded answer."""

from __future__ import annotations

import asyncio

import typer
from rich.panel import Panel
from rich.table import Table

from services.cli.params import set_name, tenant_option
from services.cli.progress import console, errors, waiting_for
from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from shared.strategies import spec_of


def show_answer(response: events.ChatResponse, *, with_text: bool = True) -> None:
    if not response.ok:
        assert response.error is not None
        console.print(f"[red]{response.error.kind.value}: {response.error.message}[/]")
        return
    timings = response.timings
    summary = f"{response.usage.completion_tokens} tokens, total {timings.total_ms:.0f} ms"
    if not with_text:  # already shown as it streamed
        console.print(f"[dim]{response.model} ({response.strategy.value}): {summary}[/]")
    else:
        console.print(
            Panel(
                response.text.strip() or "[dim](empty answer)[/]",
                title=f"{response.model} ({response.strategy.value})",
                subtitle=summary,
            )
        )
    if response.grounded_in:
        cited = {c.rule_id: c for c in response.cited}
        table = Table("grounded in", "version", "cited (method, score)", show_edge=False)
        for ref in response.grounded_in:
            citation = cited.get(ref.rule_id)
            how = f"{citation.method}, {citation.score:.2f}" if citation else "-"
            table.add_row(ref.rule_id, str(ref.version), how)
        console.print(table)


def show_text(text: str) -> None:
    console.print(text, end="", markup=False, highlight=False)


def chat(
    question: str,
    tenant: str = tenant_option("Whose rules apply."),
    strategy: events.Strategy = typer.Option(events.Strategy.OPO),
    jurisdiction: list[str] = typer.Option([], help="Repeatable; global rules always apply."),
    max_tokens: int = typer.Option(256, min=1),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the answer."),
    stream: bool = typer.Option(False, help="Show the answer's text as it is generated."),
    prompt_set: str | None = typer.Option(
        None, help="drpo: the prompt set to use (e.g. drpo-optimized); default: retrieval's."
    ),
    candidate: str | None = typer.Option(
        None, help="Ask the memory as a staged change set would make it (rules stage)."
    ),
) -> None:
    """Publish a question to the chat topic, wait for the answer and print it with its rules."""
    if not question.strip():
        raise typer.BadParameter("the question is empty", param_hint="QUESTION")
    change_set = None if candidate is None else set_name(candidate, "--candidate")
    request = events.ChatRequest(
        tenant=tenant,
        messages=(events.ChatMessage(role=events.Role.USER, content=question),),
        strategy=events.Strategy.CANDIDATE if change_set else strategy,
        scope=events.RuleScope(jurisdictions=tuple(jurisdiction), change_set=change_set),
        params=events.GenerationParams(max_tokens=max_tokens),
        prompt_set=prompt_set,
    )

    async def run() -> events.ChatResponse:
        async with AlignstreamClient(KafkaSettings()) as client:
            if stream:
                answer = await client.ask_streaming(request, show_text, timeout_s=timeout)
                console.print()
                return answer
            with waiting_for("waiting for the answer: retrieval, then generation"):
                answers = await client.ask([request], timeout_s=timeout)
        return answers[request.request_id]

    # No answer in time raises NoAnswer, naming the stage that did not answer.
    response = asyncio.run(run())
    show_answer(response, with_text=not stream)
    if not response.ok:
        raise typer.Exit(1)
    if spec_of(response.strategy).searches and not response.grounded_in:
        where = ", ".join(response.searched_scope.searched) if response.searched_scope else "-"
        errors.print(f"no rule of tenant {tenant} applied (scope searched: {where}): the answer "
                     "is the model's own. alignstream rules list --tenant "
                     f"{tenant} shows what its memory holds", markup=False)  # fmt: skip
