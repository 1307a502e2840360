"""Parsing command-line values people type, with errors that say the expected form."""

from __future__ import annotations

from datetime import date

import typer


def iso_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date: write YYYY-MM-DD, e.g. 2024-06-01", param_hint=option
        ) from None
