"""Reading JSON Lines files that people write: blank lines skipped, problems named by line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, object) for each non-blank line; (line number, what is wrong) for a line
    that is not a JSON object, so callers choose to collect errors or stop at the first."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"invalid JSON: {exc.msg} (column {exc.colno})"
                continue
            except (ValueError, RecursionError) as exc:  # huge integers, hostile nesting
                yield number, f"invalid JSON: {type(exc).__name__}"
                continue
            yield number, data if isinstance(data, dict) else "expected a JSON object"
