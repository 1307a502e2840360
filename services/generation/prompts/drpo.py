"""DRPO: an optimized alignment system prompt plus in-context examples, applied at inference.

Format (../shared/data/README.md): examples are appended to the system prompt as
``#Query:`` / ``#Answer:`` blocks; the user turn is ``# Query:`` ... ``# Answer:`` then
``<START>``; generation stops at ``<END>``. ``render_*`` below are the exact strings.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.events import IclExample

START, END = "<START>", "<END>"


def render_system(system: str, examples: Sequence[IclExample]) -> str:
    shots = "".join(f"\n\n#Query:\n{e.query}\n\n#Answer:\n{e.answer}" for e in examples)
    return system + shots


def render_user_turn(question: str) -> str:
    return f"# Query:\n{question}\n\n# Answer:\n{START}"


def strip_markers(text: str) -> str:
    """The answer without DRPO's markers (generation stops at ``<END>``)."""
    return text.split(END, 1)[0].removeprefix(START).strip()
