"""Pydantic's validation errors in a user's words: the field, and what it must be (formats named,
no regular expressions, no "Extra inputs" or "JSON decode error"). The gateway's 400 bodies and
the CLI's one-line errors both say it this way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PATTERNS: dict[str, str] = {
    r"^[A-Za-z0-9][A-Za-z0-9_\-]*$": "letters, digits, '_' and '-', starting with a letter or "
    "digit (e.g. acme)",
    r"^\w[\w.:\-]*$": "letters, digits, '_', '.', ':' and '-', starting with a letter or digit",
    r"^[a-z0-9][a-z0-9_.\-]*$": "lower-case letters, digits, '_', '.' and '-'",
    r"^[0-9a-f]{64}$": "64 lower-case hex digits (a SHA-256)",
}
"""The project's id patterns (``shared.events``), in words."""
OWNED_BY_THE_KEY = frozenset({"tenant"})
"""Fields a body may not carry because the API key decides them."""


@dataclass(frozen=True, slots=True)
class Problem:
    where: str
    """The field's dotted path ('' for the body as a whole)."""
    text: str
    """What is wrong, in words."""

    def line(self) -> str:
        return f"{self.where}: {self.text}" if self.where else self.text


def _bounds(kind: str, ctx: Mapping[str, Any]) -> str | None:
    words = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
             "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}  # fmt: skip
    if kind in words:
        phrase, key = words[kind]
        return f"must be {phrase} {ctx[key]}"
    if kind == "string_too_long":
        return f"at most {ctx['max_length']} characters"
    if kind == "string_too_short":
        n = ctx["min_length"]
        return "must not be empty" if n == 1 else f"at least {n} characters"
    if kind == "too_long":
        return f"at most {ctx['max_length']} items"
    if kind == "too_short":
        return f"at least {ctx['min_length']} items"
    return None


def _text(kind: str, msg: str, ctx: Mapping[str, Any], where: str) -> str:
    if kind == "string_pattern_mismatch":
        return f"must be {PATTERNS.get(str(ctx.get('pattern')), 'in the documented form')}"
    if kind.startswith("date_"):
        return "must be a date written YYYY-MM-DD, e.g. 2026-01-31"
    if kind.startswith("datetime_"):
        return "must be a date and time in ISO 8601, e.g. 2026-01-31T09:30:00Z"
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        last = where.rsplit(".", 1)[-1]
        if last in OWNED_BY_THE_KEY:
            return f"leave '{last}' out: the API key decides it"
        return "is not a known field"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    bounded = _bounds(kind, ctx)
    if bounded is not None:
        return bounded
    text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return text.replace("Input should be", "must be").replace("String should", "must")


def describe(error: Mapping[str, Any], *, skip: tuple[str, ...] = ("body",)) -> Problem:
    """One pydantic error (``ValidationError.errors()`` item) in words; ``skip``: leading path
    parts that are not fields (FastAPI's ``body``)."""
    kind, ctx = str(error.get("type", "")), error.get("ctx") or {}
    loc = [p for p in error.get("loc", ()) if p not in skip]
    if kind == "json_invalid":  # FastAPI puts the character offset where a field would be
        at = f" (at character {loc[0]})" if loc and isinstance(loc[0], int) else ""
        return Problem("", f"the body is not valid JSON{at}")
    where = ".".join(str(p) for p in loc)
    return Problem(where, _text(kind, str(error.get("msg", "invalid")), ctx, where))
