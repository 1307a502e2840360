"""Logging: one JSON object per line for log shippers, readable lines on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


# Extras that repeat the line's prefix (or vLLM's process name on every record).
_IMPLIED = {"service", "vllm_process_name"}


class ReadableFormatter(logging.Formatter):
    """``16:02:47 INFO  generation: service started  http_port=36695`` (extras as key=value)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(
            f"{name}={value}"
            for name, value in record.__dict__.items()
            if name not in _STANDARD and not name.startswith("_") and name not in _IMPLIED
        )
        line = f"{when} {record.levelname:<7} {self.service}: {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class DropNoise(logging.Filter):
    """Messages of libraries that say nothing to an operator of this project."""

    NOISE = (
        "Auto create topics is disabled",  # FastStream; our services create their topics
        "is being executed...",  # FastStream's task supervisor, once per subscriber stop
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self.NOISE)


def wants_json(json_lines: bool | None) -> bool:
    """Unset: JSON unless stderr is a terminal."""
    return json_lines if json_lines is not None else not sys.stderr.isatty()


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool | None = None) -> None:
    """Route every logger (ours, FastStream's, aiokafka's) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(service) if wants_json(json_lines) else ReadableFormatter(service)
    handler.setFormatter(formatter)
    handler.addFilter(DropNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance at INFO; keep it for warnings.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
