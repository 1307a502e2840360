"""Leaving a job the terminal follows (Ctrl-C, a timeout) leaves it running and says how to
find it again and how to stop it."""

from __future__ import annotations

import pytest
import typer

from services.cli.following import INTERRUPTED, following
from shared.errors import Hinted


async def interrupted() -> None:
    raise KeyboardInterrupt


async def timed_out() -> None:
    raise TimeoutError("job j1 not finished after 5.0s")


async def answered() -> int:
    return 42


def test_ctrl_c_exits_130_and_names_the_show_and_cancel_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(typer.Exit) as exited:
        following("exam", "j1", "acme", interrupted())
    assert exited.value.exit_code == INTERRUPTED
    err = capsys.readouterr().err
    assert "exam job j1 runs on" in err
    assert "alignstream exam show j1 --tenant acme" in err
    assert "alignstream exam cancel j1 --tenant acme" in err


def test_a_timeout_is_a_hint_to_start_grading_and_the_result_passes_through() -> None:
    with pytest.raises(Hinted) as hinted:
        following("research", "j1", "acme", timed_out())
    assert "alignstream serve grading" in hinted.value.hint
    assert "alignstream research show j1 --tenant acme" in hinted.value.hint
    assert following("research", "j1", "acme", answered()) == 42
