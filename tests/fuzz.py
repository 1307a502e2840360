"""Hypothesis strategies for hostile input: every message they make must be dead-lettered.

Each strategy yields ``(payload, reason)``: the bytes to publish on a consumed topic and the
dead-letter reason the consumer must give. They start from valid sample events of the topic's
model and break them in one way each (random bytes, wrong version, unknown kind, unknown or
wrong-typed fields, a missing required field, hostile JSON, oversize, another topic's event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from services.generation.app import GroundedAdapter
from services.grading.app import JobAdapter, ResearchAdapter, ResponseAdapter
from services.retrieval.app import ChatRequestAdapter
from shared import events
from shared.topics import (
    CHAT_GROUNDED,
    CHAT_REQUESTS,
    EXAM_ANSWERS,
    EXAM_JOBS,
    RESEARCH_JOBS,
    RULES_EVENTS,
    RULES_LIVE,
    TopicSpec,
)
from tests.samples import sample_events

Message = tuple[bytes, str | None]
"""A payload and the dead-letter reason it must get (None: any reason)."""

WRONG = [[None]]
"""A value no field of any contract accepts (not a string, number, object or list of those)."""


@dataclass(frozen=True, eq=False)  # hashed by identity (events hold dicts)
class Consumed:
    """A topic some service consumes, with its decoder and valid events of its model."""

    topic: TopicSpec
    service: str
    adapter: TypeAdapter[Any]
    valid: tuple[events.Event, ...]


def _of(*kinds: type[events.Event]) -> tuple[events.Event, ...]:
    return tuple(e for e in sample_events() if isinstance(e, kinds))


_RULES_TOPIC = _of(
    events.RuleUpsert,
    events.RuleDelete,
    events.JurisdictionTree,
    events.ChangeSetStage,
    events.ChangeSetPromote,
    events.ChangeSetDiscard,
)
CONSUMED = (
    Consumed(RULES_EVENTS, "ingest", events.RULES_TOPIC_EVENT, _RULES_TOPIC),
    Consumed(RULES_LIVE, "ingest", events.RULES_TOPIC_EVENT, _RULES_TOPIC),
    Consumed(CHAT_REQUESTS, "retrieval", ChatRequestAdapter, _of(events.ChatRequest)),
    Consumed(CHAT_GROUNDED, "generation", GroundedAdapter, _of(events.GroundedRequest)),
    Consumed(EXAM_JOBS, "grading", JobAdapter, _of(events.ExamJob)),
    Consumed(EXAM_ANSWERS, "grading", ResponseAdapter, _of(events.ChatResponse)),
    Consumed(RESEARCH_JOBS, "grading", ResearchAdapter, _of(events.ResearchJob)),
)


def _dump(event: events.Event) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside nested objects and lists where a value sits."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        found.append((*prefix, key))
        if isinstance(child, dict | list):
            found.extend(_paths(child, (*prefix, key)))
    return found


def _set(data: Any, path: tuple[Any, ...], new: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = new


def _envelope(path: tuple[Any, ...]) -> bool:
    """``v`` and ``kind`` at the top decide the reason by themselves."""
    return len(path) == 1 and path[0] in ("v", "kind")


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()  # ASCII: a lone surrogate stays a valid JSON escape


@st.composite
def _mutated(draw: st.DrawFn, consumed: Consumed) -> Message:
    event = draw(st.sampled_from(consumed.valid))
    data = _dump(event)
    how = draw(
        st.sampled_from(["version", "kind", "unknown", "wrong_type", "missing", "surrogate"])
    )
    if how == "version":
        data["v"] = draw(st.one_of(st.integers().filter(lambda v: v != 1), st.text(), st.none()))
        return _json(data), "unknown_version"
    if how == "kind":
        data["kind"] = draw(st.text().filter(lambda k: k not in _KINDS))
        return _json(data), "unknown_kind"
    paths = [p for p in _paths(data) if not _envelope(p)]
    if how == "unknown":
        objects = [()] + [p for p in paths if isinstance(_get(data, p), dict)]
        where = draw(st.sampled_from(objects))
        name = draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in _get(data, where)))
        _get(data, where)[name] = WRONG
        return _json(data), "invalid_payload"
    required = [n for n, f in type(event).model_fields.items() if f.is_required()]
    if how == "missing" and required:
        del data[draw(st.sampled_from(required))]
        return _json(data), "invalid_payload"
    if how == "missing":
        how = "wrong_type"
    if how == "wrong_type":
        _set(data, draw(st.sampled_from(paths)), WRONG)
        return _json(data), "invalid_payload"
    strings = [p for p in paths if isinstance(_get(data, p), str)]
    _set(data, draw(st.sampled_from(strings)), "\ud800 lone surrogate")
    return _json(data), "invalid_payload"


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


_KINDS = {e.kind for e in sample_events()}

_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _not_an_object(data: Any) -> Message:
    return _json(data), "invalid_payload"


def _raw(payload: bytes) -> Message:
    try:
        parsed = json.loads(payload)
    except (ValueError, RecursionError):
        return payload, "invalid_json"
    if not isinstance(parsed, dict):
        return payload, "invalid_payload"
    return payload, "unknown_version" if parsed.get("v") != 1 else None


def _hostile(max_bytes: int) -> st.SearchStrategy[Message]:
    depth = st.integers(min_value=2_000, max_value=min(50_000, max_bytes // 2 - 20))
    return st.one_of(
        depth.map(lambda d: (b'{"v": 1, "x": ' + b"[" * d + b"]" * d + b"}", "invalid_json")),
        depth.map(lambda d: (b"[" * d, "invalid_json")),
        st.integers(min_value=4_400, max_value=20_000).map(
            lambda n: (b'{"v": 1, "x": ' + b"9" * n + b"}", "invalid_json")
        ),
        st.just((b'{"v": NaN}', "unknown_version")),
        st.just((b"\x00" * 64, "invalid_json")),
        st.just((b"", "invalid_json")),
        st.integers(min_value=max_bytes + 1, max_value=max_bytes * 2).map(
            lambda n: (b'{"v": 1, "pad": "' + b"x" * n + b'"}', "oversized")
        ),
    )


def bad_messages(consumed: Consumed, *, max_bytes: int) -> st.SearchStrategy[Message]:
    """Malformed, wrong-schema, wrong-version and hostile messages for one consumed topic."""
    others = [e for e in sample_events() if not any(isinstance(e, type(v)) for v in consumed.valid)]
    foreign = st.sampled_from(others).map(lambda e: (events.encode(e), "unknown_kind"))
    return st.one_of(
        st.binary(max_size=200).map(_raw),
        _JSON.filter(lambda d: not isinstance(d, dict)).map(_not_an_object),
        _mutated(consumed),
        _hostile(max_bytes),
        foreign,
    )


def draw_examples(strategy: st.SearchStrategy[Message], count: int) -> list[Message]:
    """``count`` examples of a strategy, reproducibly (hypothesis as a generator, for tests that
    publish them all at once rather than one example at a time)."""
    drawn: list[Message] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(message: Message) -> None:
        drawn.append(message)

    collect()
    return drawn
