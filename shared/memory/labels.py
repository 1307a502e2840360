"""Labels (jurisdictions, locales, tags) as the index stores and the queries match them, made in
one place: a label is normalized once where it enters (a rule at ingest, a request's scope when
its filter is built), and everything after works on the final TAG values.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable

from shared.events import GLOBAL_JURISDICTION, ancestors_or_self

TAG_SEPARATOR = "|"
"""Tag values may contain commas (``Beijing, CN``); ``|`` is stripped from values instead."""

_ESCAPED = frozenset(string.punctuation.replace("_", "") + string.whitespace)


def normalize_label(value: str) -> str:
    """A label as it is indexed and queried: NFKC (full-width forms, compatibility characters)
    and case-folded, so ``ÎLE-DE-FRANCE`` and ``île-de-france``, ``（`` and ``(``, are one
    label at ingest, in queries and in inference alike."""
    return unicodedata.normalize("NFKC", value).casefold().strip()


def tag_value(value: str) -> str:
    """A label as a TAG value: normalized, without the tag separator."""
    return normalize_label(value).replace(TAG_SEPARATOR, "/")


def tag_values(values: Iterable[str]) -> tuple[str, ...]:
    """Labels as TAG values, each once, in order."""
    return tuple(dict.fromkeys(tag_value(v) for v in values))


def scope_values(names: Iterable[str]) -> tuple[str, ...]:
    """The jurisdiction TAG values a search under these jurisdictions matches: each one, its
    ancestors (``cn/山东`` for ``cn/山东/济南``) and ``global``."""
    values = [GLOBAL_JURISDICTION]
    for name in names:
        values.extend(ancestors_or_self(tag_value(name)))
    return tuple(dict.fromkeys(values))


def escape_tag(value: str) -> str:
    """A TAG value (already ``tag_value``) in the query syntax: a backslash before ASCII
    punctuation and whitespace only. RediSearch honours escapes only there; an escape before any
    other character (``’``, ``·``, a CJK bracket) stays in the term, so such a value would never
    match what was indexed."""
    return "".join("\\" + ch if ch in _ESCAPED else ch for ch in value)
