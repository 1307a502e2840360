"""The ``alignstream`` command: one entry point for everything a person does."""

from __future__ import annotations

import sys

import typer

from services.cli import (
    audit,
    changesets,
    constitution,
    exam,
    jurisdictions,
    memory,
    models,
    prompts,
    research,
    rules,
    rules_admin,
    stack,
    synth,
    tenants,
    topics,
)
from services.cli.chat import chat
from services.cli.demo import demo
from services.cli.failures import explain
from services.cli.progress import errors
from services.cli.serve import serve
from shared.logging import configure_logging

app = typer.Typer(
    help="alignstream: streaming, rule-grounded alignment for LLMs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: choices and defaults listed, no type column
)
app.add_typer(stack.app, name="stack")
app.add_typer(rules.app, name="rules")
rules_admin.register(rules.app)
changesets.register(rules.app)
app.add_typer(jurisdictions.app, name="jurisdictions")
app.add_typer(memory.app, name="memory")
app.add_typer(exam.app, name="exam")
app.add_typer(prompts.app, name="prompts")
app.add_typer(topics.app, name="topics")
app.add_typer(models.app, name="models")
app.add_typer(constitution.app, name="constitution")
app.add_typer(synth.app, name="synth")
app.add_typer(research.app, name="research")
app.add_typer(tenants.app, name="tenants")
app.add_typer(audit.app, name="audit")
app.command()(serve)
app.command()(demo)
app.command()(chat)


@app.callback()
def _options(
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks instead of one-line errors."
    ),
) -> None:
    """alignstream: streaming, rule-grounded alignment for LLMs."""
    # --debug is taken out of the arguments by main(), so it works anywhere on the line.


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    # Quiet on a terminal: the command's own output says what happened; libraries' retries
    # and warnings (aiokafka's "Unable connect to ...") are noise unless debugging.
    configure_logging("cli", level="DEBUG" if debug else "CRITICAL", json_lines=False)
    try:
        app(args=args, prog_name="alignstream")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if debug:
            raise
        failure = explain(exc)
        errors.print(f"error: {failure.message}", style="red", markup=False, highlight=False)
        errors.print(f"hint: {failure.hint}", style="dim", markup=False, highlight=False)
        sys.exit(1)
