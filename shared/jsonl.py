"""Reading JSON Lines files that people write: blank lines skipped, problems named by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def parse_json_line(line: str) -> dict[str, Any] | str:
    """The JSON object on one line, or what is wrong with it."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} (column {exc.colno})"
    except (ValueError, RecursionError) as exc:  # huge integers, hostile nesting
        return f"invalid JSON: {type(exc).__name__}"
    return data if isinstance(data, dict) else "expected a JSON object"


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, object) for each non-blank line; (line number, what is wrong) for a line
    that is not a JSON object or not UTF-8, so callers choose to collect errors or stop at the
    first. A byte-order mark is accepted."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield number, f"not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
                continue
            if line.strip():
                yield number, parse_json_line(line)
