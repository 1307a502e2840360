"""The ``alignstream`` command: one entry point for everything a person does."""

from __future__ import annotations

import typer

from services.cli import constitution, exam, jurisdictions, memory, prompts, rules, stack, topics
from services.cli.chat import chat
from services.cli.demo import demo
from services.cli.serve import serve

app = typer.Typer(
    help="alignstream: streaming, rule-grounded alignment for LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(rules.app, name="rules")
app.add_typer(jurisdictions.app, name="jurisdictions")
app.add_typer(memory.app, name="memory")
app.add_typer(exam.app, name="exam")
app.add_typer(prompts.app, name="prompts")
app.add_typer(topics.app, name="topics")
app.add_typer(constitution.app, name="constitution")
app.command()(serve)
app.command()(demo)
app.command()(chat)


def main() -> None:
    app()
