"""Following a job the grading service runs (exams, research jobs) from the terminal: the job
does not belong to the terminal, so leaving (a timeout, Ctrl-C) leaves it running and says how
to find it again or stop it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

import typer

from services.cli.progress import errors
from shared.errors import Hinted

T = TypeVar("T")
INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it."""


def following(
    kind: Literal["exam", "research"], job_id: str, tenant: str, work: Coroutine[Any, Any, T]
) -> T:
    """Run ``work``, which follows the job ``job_id`` to its end."""
    show = f"alignstream {kind} show {job_id} --tenant {tenant}"
    try:
        return asyncio.run(work)
    except TimeoutError as exc:
        raise Hinted(str(exc), "is the grading service running (alignstream serve grading)? "
                               f"{show} shows where it is") from exc  # fmt: skip
    except KeyboardInterrupt:
        errors.print(f"stopped following; {kind} job {job_id} runs on in the grading service\n"
                     f"  where it is: {show}\n"
                     f"  to stop it:  alignstream {kind} cancel {job_id} --tenant {tenant}",
                     markup=False, highlight=False)  # fmt: skip
        raise typer.Exit(INTERRUPTED) from None
