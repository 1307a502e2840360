"""DRPO: an optimized alignment system prompt plus in-context examples, applied at inference.

Format (../shared/data/README.md): examples are appended to the system prompt as
``#Query:`` / ``#Answer:`` blocks; the user turn is ``# Query:`` ... ``# Answer:`` then
``<START>``; generation stops at ``<END>``. ``render_*`` below are the exact strings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

START, END = "<START>", "<END>"


@dataclass(frozen=True, slots=True)
class Example:
    query: str
    answer: str
    """Includes the ``<START>``/``<END>`` markers, as in DRPO's files."""


@dataclass(frozen=True, slots=True)
class DrpoPromptSet:
    system: str
    examples: tuple[Example, ...] = ()

    @classmethod
    def load(cls, system_file: Path, examples_file: Path | None = None) -> DrpoPromptSet:
        """DRPO's files: a system prompt text file and ``{query: answer}`` JSON examples."""
        examples: tuple[Example, ...] = ()
        if examples_file is not None:
            data = json.loads(examples_file.read_text(encoding="utf-8"))
            examples = tuple(Example(q, a) for q, a in data.items())
        return cls(system_file.read_text(encoding="utf-8").strip(), examples)


def render_system(prompt_set: DrpoPromptSet, examples: Sequence[Example]) -> str:
    shots = "".join(f"\n\n#Query:\n{e.query}\n\n#Answer:\n{e.answer}" for e in examples)
    return prompt_set.system + shots


def render_user_turn(question: str) -> str:
    return f"# Query:\n{question}\n\n# Answer:\n{START}"


def strip_markers(text: str) -> str:
    """The answer without DRPO's markers (generation stops at ``<END>``)."""
    return text.split(END, 1)[0].removeprefix(START).strip()
