"""The CLI's command groups, all made one way."""

from __future__ import annotations

import typer


def command_group(help: str) -> typer.Typer:
    """A group of subcommands: plain help (choices and defaults listed, no type column), shown
    when the group is called without a subcommand."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)
