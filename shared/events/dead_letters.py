"""Dead letters: messages a service could not process, kept with the reason."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, field_serializer, field_validator

from shared.events.base import Event, utcnow


class DeadLetter(Event):
    """A message a service could not process, kept with the reason so nothing is lost."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    kind: Literal["dead_letter"] = "dead_letter"
    service: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    record_key: bytes | None = Field(default=None, alias="key")
    """The failed record's key (its first ``MAX_DEAD_LETTER_KEY_BYTES`` bytes); ``key`` on the
    wire. The letter is published under it, so it lands beside its record's kin."""
    original: bytes
    """The message body as received, cut to the service's dead-letter prefix: a letter must
    always fit where its message did not (``original_size`` and ``original_sha256`` identify
    the whole body)."""
    original_size: int | None = None
    """Length of the whole body in bytes (None: letters written before bounding)."""
    original_sha256: str | None = None
    """SHA-256 (hex) of the whole body."""
    headers: dict[str, str] = Field(default_factory=dict)
    reason: str
    """Short machine-readable cause, e.g. ``invalid_payload``, ``unknown_version``."""
    error: Annotated[str, StringConstraints(max_length=8192)]
    failed_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> bytes | None:
        return self.record_key

    @property
    def truncated(self) -> bool:
        """Whether ``original`` is only a prefix of the message body."""
        return self.original_size is not None and self.original_size > len(self.original)

    @field_serializer("original", "record_key", when_used="json")
    def _b64(self, value: bytes | None) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")

    @field_validator("original", "record_key", mode="before")
    @classmethod
    def _unb64(cls, value: object) -> object:
        return base64.b64decode(value, validate=True) if isinstance(value, str) else value
