"""Spinners say what they wait for and how long it has taken so far, not a guess."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console
from rich.table import Table

from services.cli import progress


def test_waiting_for_shows_the_elapsed_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=screen, force_terminal=True, width=120))

    with progress.waiting_for("waiting for the model"):
        time.sleep(2.3)  # blocking work: the count goes on
    shown = screen.getvalue()
    assert "waiting for the model (0 s)" in shown
    assert "waiting for the model (2 s)" in shown
    assert "about" not in shown


def test_piped_output_is_wide_enough_for_every_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert progress._width(io.StringIO()) == progress.PIPED_WIDTH
    monkeypatch.setenv("COLUMNS", "100")  # asked for: Rich uses it
    assert progress._width(io.StringIO()) is None
    monkeypatch.delenv("COLUMNS")
    screen = io.StringIO()
    table_console = Console(file=screen, width=progress._width(screen))
    row = "rule-" + "x" * 150
    table = Table("rule", "text")
    table.add_row(row, "y" * 150)
    table_console.print(table)
    assert row in screen.getvalue()  # not cut at 80 columns
