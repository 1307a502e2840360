"""How the demo shows a grounded request and its answer: the rules, why each was chosen, the
answer and the rule versions it cites."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shared import events

SCOPE_SOURCES = {
    "request": "named in the request",
    "question": "named in the question",
    "default": "the tenant's default scope",
    "global": "no place given: global rules only",
    "any": "every jurisdiction",
    "tree": "no place given: the tenant's whole tree",
}


def scope_line(scope: events.SearchedScope | None) -> str:
    if scope is None:
        return "scope: not searched"
    places = " + ".join(scope.searched) if scope.searched else "all"
    line = f"scope {places} ({SCOPE_SOURCES[scope.source]})"
    if scope.unresolved:
        line += f"; unknown places: {', '.join(scope.unresolved)}"
    return line


def why(rule: events.RetrievedRule) -> str:
    """Which search found the rule, at which rank (hybrid: both)."""
    ranks = (("meaning", rule.vector_rank), ("words", rule.lexical_rank))
    found = [f"{name} #{rank}" for name, rank in ranks if rank is not None]
    return ", ".join(found) or f"score {rule.score:.2f}"


def grounding_panel(grounded: events.GroundedRequest) -> Panel:
    request = grounded.request
    if grounded.rules:
        table = Table("#", "rule", "version", "where", "found by", "text", show_edge=False,
                      box=None, padding=(0, 1))  # fmt: skip
        for rank, rule in enumerate(grounded.rules, 1):
            table.add_row(str(rank), rule.rule_id, str(rule.version), rule.jurisdiction,
                          why(rule), rule.text)  # fmt: skip
        body: Table | Text = table
    else:
        body = Text("no rule of this tenant applies", style="yellow")
    return Panel(
        body,
        title=f"[bold]{request.tenant}[/]: {request.question}",
        subtitle=(
            f"{scope_line(grounded.searched_scope)} · retrieval {grounded.retrieval_ms:.0f} ms"
        ),
        subtitle_align="left",
    )


def answer_panel(response: events.ChatResponse, *, question: str = "") -> Panel:
    if not response.ok:
        assert response.error is not None
        text = Text(f"{response.error.kind.value}: {response.error.message}", style="red")
        return Panel(text, title=f"error: {question}")
    given = ", ".join(f"{ref.rule_id} v{ref.version}" for ref in response.grounded_in)
    cited = ", ".join(f"{c.rule_id} v{c.version}" for c in response.cited)
    body = Group(
        Text(response.text.strip() or "(empty answer)"),
        Text(f"grounded in: {given or 'no rule'}; cites: {cited or 'none'}", style="dim"),
    )
    return Panel(
        body,
        title=f"[bold]{response.tenant}[/]: {question}" if question else "answer",
        subtitle=(
            f"{response.model} · {response.usage.completion_tokens} tokens · "
            f"{response.timings.total_ms:.0f} ms"
        ),
        subtitle_align="left",
        border_style="green",
    )
