"""Progress bars and result tables shared by the CLI commands."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

PIPED_WIDTH = 400
"""Output to a file or a pipe: as wide as this, so no table is cut (Rich would assume 80)."""


def _width(stream: TextIO) -> int | None:
    """None (the terminal's own width, or ``COLUMNS``) on a terminal; else ``PIPED_WIDTH``."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return PIPED_WIDTH


console = Console(width=_width(sys.stdout))
errors = Console(stderr=True, soft_wrap=True)
"""Errors and hints: on stderr, so output piped elsewhere stays clean."""


@contextlib.contextmanager
def waiting_for(what: str) -> Iterator[None]:
    """A spinner that says what the command waits for and for how long so far (no guess at
    how long it will take: that depends on the machine). A thread counts the seconds, so the
    work may block (a conversion) or await (a request)."""
    started = time.monotonic()
    done = threading.Event()
    with console.status(f"{what} (0 s)") as status:

        def tick() -> None:
            while not done.wait(1.0):
                status.update(f"{what} ({time.monotonic() - started:.0f} s)")

        ticker = threading.Thread(target=tick, name="spinner", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
