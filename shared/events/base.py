"""The envelope every event shares, the field types the contracts reuse, and the wire format.

Every message on the wire is a pydantic model serialized as JSON. Each carries ``kind`` (which
model it is) and ``v`` (its schema version); a consumer that gets an unknown kind, an unknown
version or a payload that fails validation sends it to the topic's dead-letter topic. Adding an
optional field is backwards compatible; anything else bumps ``v``.
"""

from __future__ import annotations

import unicodedata
import uuid
from abc import abstractmethod
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION: Literal[1] = 1
"""The current schema version of every event model."""

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^\w[\w.:\-]*$"),
]
"""Ids of rules, requests and jobs: letters (any script), digits, ``_ . : -``."""

TenantId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
]
"""Tenant names never contain ':' so ``tenant:rule_id`` keys split unambiguously."""


def _no_control_characters(value: str) -> str:
    # A label becomes a TAG value in search queries, where a control character is a syntax
    # error: a request naming one would fail its search on every redelivery.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("control characters are not allowed in a label")
    return value


Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, strip_whitespace=True),
    AfterValidator(_no_control_characters),
]
"""Free-form filter values (jurisdictions, locales, tags); may be any script, e.g. 北京市, but
no control characters."""


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """Base of every model on the wire: strict about unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(Contract):
    """The envelope: what every event on a topic carries, and the Kafka key it is sent under."""

    kind: str
    """Which model the event is (each subclass fixes it to one literal: the discriminator)."""
    v: Literal[1] = SCHEMA_VERSION
    """Schema version; consumers reject versions they do not know."""
    event_id: str = Field(default_factory=new_id)
    """Unique id of this event (not of the entity it is about)."""
    created_at: datetime = Field(default_factory=utcnow)
    """When the producer created the event (UTC)."""

    @property
    @abstractmethod
    def key(self) -> str | bytes | None:
        """The Kafka key the event is published under (it fixes ordering and compaction)."""


def encode(event: Event) -> bytes:
    """Wire format of every event: compact UTF-8 JSON."""
    return event.model_dump_json(by_alias=True).encode("utf-8")


def key_bytes(key: str | bytes | None) -> bytes | None:
    """An event's key as the broker takes it."""
    return key.encode() if isinstance(key, str) else key
