"""What each strategy does, in one place: read by retrieval (embed? search? attach a prompt
set?), the prompt builder (which rules, which rendering) and generation (how the answer is
finished), and by the CLI for names.

Adding a strategy: a member of ``events.Strategy`` (the wire name), one ``StrategySpec`` here,
and, for a new rendering, its branch in ``services/generation/prompts/builder.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.events import Strategy


class RulesFrom(StrEnum):
    """Where the rules a strategy grounds in come from."""

    NONE = "none"
    SEARCH = "search"
    """Retrieved from the tenant's memory for the question (OPO)."""
    REQUEST = "request"
    """Given in the request (oracle: the rules the question tests)."""


class Rendering(StrEnum):
    """How the prompt is built (and the answer finished)."""

    RULES = "rules"
    """alignstream's (or OPO's) user turn: the rules, then the question."""
    PROMPT_SET = "prompt_set"
    """DRPO: the prompt set's system prompt and examples; the answer's markers are stripped."""
    RAW = "raw"
    """The messages exactly as given (e.g. question generation)."""


@dataclass(frozen=True, slots=True)
class StrategySpec:
    strategy: Strategy
    rules: RulesFrom
    rendering: Rendering

    @property
    def searches(self) -> bool:
        return self.rules is RulesFrom.SEARCH

    @property
    def uses_rules(self) -> bool:
        return self.rules is not RulesFrom.NONE

    @property
    def uses_prompt_set(self) -> bool:
        return self.rendering is Rendering.PROMPT_SET

    @property
    def embeds(self) -> bool:
        """Whether retrieval embeds the question: to search rules, or to pick a prompt set's
        examples by similarity."""
        return self.searches or self.uses_prompt_set


STRATEGIES: dict[Strategy, StrategySpec] = {  # what each does for the user: ``events.Strategy``
    spec.strategy: spec
    for spec in (
        StrategySpec(Strategy.BASE, RulesFrom.NONE, Rendering.RULES),
        StrategySpec(Strategy.OPO, RulesFrom.SEARCH, Rendering.RULES),
        StrategySpec(Strategy.CANDIDATE, RulesFrom.SEARCH, Rendering.RULES),
        StrategySpec(Strategy.ORACLE, RulesFrom.REQUEST, Rendering.RULES),
        StrategySpec(Strategy.DRPO, RulesFrom.NONE, Rendering.PROMPT_SET),
        StrategySpec(Strategy.RAW, RulesFrom.NONE, Rendering.RAW),
    )
}


def spec_of(strategy: Strategy) -> StrategySpec:
    return STRATEGIES[strategy]


def by_name(name: str) -> Strategy | None:
    """The strategy named ``name`` (any case; ``Strategy`` also takes its former names, e.g.
    ``none``); None when none is."""
    try:
        return Strategy(name.strip().lower())
    except ValueError:
        return None
