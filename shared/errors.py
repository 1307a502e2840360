"""Failures a person can act on: a message and a hint (the CLI prints both on one line each)."""

from __future__ import annotations


class Hinted(Exception):
    """An error that knows what to do about it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def unreachable_hint(variable: str) -> str:
    """What to do when a server named by ``variable`` does not answer."""
    return f"start the local stack (alignstream stack up) or point {variable} at a running server"


class KafkaUnreachable(Hinted, TimeoutError):
    """No broker answered within the time allowed."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(f"Kafka at {bootstrap} not reachable", unreachable_hint("KAFKA_BOOTSTRAP"))


class NoAnswer(Hinted, TimeoutError):
    """A request got no answer in time; ``stage`` names the service that did not answer."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message, f"is the {stage} service running? (alignstream serve {stage})")
        self.stage = stage


class NotConfirmed(Hinted, TimeoutError):
    """Rule events were published but not all confirmed servable in time."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            "the events are safe in rules.events and apply when the ingest service runs "
            "(alignstream serve ingest); publishing them again changes nothing",
        )
