"""Everyday failures as one line and a hint, instead of a traceback (``--debug`` shows it)."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from shared.devstack.servers import DEFAULT_STATE_DIR, StackError
from shared.errors import Hinted, unreachable_hint
from shared.topic_checks import TopicMisconfigured
from shared.validation_text import describe

DEBUG_HINT = "run again with --debug for the traceback"


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    hint: str


def _validation(exc: ValidationError) -> Failure:
    first = exc.errors()[0]
    problem = describe(first, skip=())
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    value = first.get("input")
    shown = f" (got {value!r:.60})" if isinstance(value, str | int | float) else ""
    return Failure(f"invalid {problem.where or exc.title}: {problem.text}{shown}{more}",
                   "see --help for the format")  # fmt: skip


def explain(exc: BaseException) -> Failure:
    """The one-line explanation of an exception (a generic one when it is not known)."""
    if isinstance(exc, Hinted):
        return Failure(str(exc), exc.hint)
    if isinstance(exc, StackError):
        return Failure(str(exc), f"its log is in {DEFAULT_STATE_DIR}; alignstream stack status")
    if isinstance(exc, TopicMisconfigured):
        return Failure(str(exc), "alignstream topics check lists every difference")
    if isinstance(exc, ValidationError):
        return _validation(exc)
    if isinstance(exc, KafkaConnectionError):
        return Failure(f"Kafka not reachable: {exc}", unreachable_hint("KAFKA_BOOTSTRAP"))
    if isinstance(exc, KafkaError):
        return Failure(f"Kafka: {exc}", DEBUG_HINT)
    if isinstance(exc, RedisConnectionError):
        return Failure(f"Redis not reachable: {exc}", unreachable_hint("REDIS_URL"))
    if isinstance(exc, RedisError):
        return Failure(f"Redis: {exc}", DEBUG_HINT)
    if isinstance(exc, UnicodeDecodeError):
        return Failure(f"not UTF-8 text: {exc.reason} at byte {exc.start}", "save it as UTF-8")
    if isinstance(exc, TimeoutError):
        return Failure(f"timed out: {exc}" if str(exc) else "timed out", DEBUG_HINT)
    if isinstance(exc, OSError):
        return Failure(str(exc), DEBUG_HINT)
    return Failure(f"{type(exc).__name__}: {exc}", DEBUG_HINT)
