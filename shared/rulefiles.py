"""Reading rule files (JSONL or CSV) into rule events, strictly: every problem is reported with
its line, nothing is guessed.

A JSONL line is either a rule (its fields as in ``shared.events.Rule``; becomes an upsert) or a
full rule event with ``kind`` (``rule.upsert`` / ``rule.delete``). A CSV has a header of ``Rule``
field names and one rule per row (``tags`` separated by ``;``); it is read with the csv module's
strict dialect, so an unterminated quote is an error, not a rule that swallows the next rows.
Files are UTF-8 (a byte-order mark is accepted). Missing ``tenant`` takes the given default;
missing ``version`` takes the current time in milliseconds, which keeps versions monotonic across
successive publishes. The same rule twice in one file is an error naming both lines, unless
``last_wins``. A rule text over ``MAX_RULE_TEXT_CHARS`` is rejected (split it into several rules,
one per article or section): splitting it silently would leave parts behind on a later update or
delete.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from shared import events
from shared.events import RuleEvent
from shared.jsonl import parse_json_line
from shared.validation_text import describe

CSV_COLUMNS = frozenset(events.Rule.model_fields) - {"v"}
REQUIRED_CSV_COLUMNS = ("rule_id", "text")
MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ParsedRules:
    events: list[RuleEvent] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    """The line of each event."""


Row = tuple[int, dict[str, Any] | LineError]


def _text(path: Path) -> str | LineError:
    """The file as text, or why it is not UTF-8 text (with the line of the first bad byte)."""
    data = path.read_bytes()
    if len(data) > MAX_FILE_BYTES:
        return LineError(1, f"the file is {len(data):,} bytes, over {MAX_FILE_BYTES:,}")
    if b"\x00" in data[:8192]:
        return LineError(1, "a binary file, not a JSONL or CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return LineError(line, f"not UTF-8 (byte 0x{data[exc.start]:02x}): save the file as UTF-8")


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield 1, LineError(1, f"invalid CSV header: {exc}")
        return
    if header is None:
        return
    columns = [name.strip() for name in header]
    problems = []
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        problems.append(f"unknown columns {', '.join(repr(c) for c in unknown)}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        problems.append(f"repeated columns {', '.join(repeated)}")
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in columns]
    if missing:
        problems.append(f"missing columns {', '.join(missing)}")
    if problems:
        known = ", ".join(sorted(CSV_COLUMNS))
        yield 1, LineError(1, f"header: {'; '.join(problems)} (columns: {known})")
        return
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = "a quoted field is never closed" if "end of data" in str(exc) else str(exc)
            span = f"lines {start}-{reader.line_num}" if reader.line_num > start else "this line"
            yield start, LineError(start, f"invalid CSV: {reason} ({span}); nothing after it "
                                          "is read")  # fmt: skip
            return
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            yield start, LineError(start, f"{len(cells)} fields, the header has {len(columns)}")
            continue
        row: dict[str, Any] = {c: v for c, v in zip(columns, cells, strict=True) if v != ""}
        if "tags" in row:
            row["tags"] = [t.strip() for t in row["tags"].split(";") if t.strip()]
        yield start, row


def _jsonl_rows(text: str) -> Iterator[Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            parsed = parse_json_line(line)
            yield number, parsed if isinstance(parsed, dict) else LineError(number, parsed)


def _event(data: dict[str, Any], tenant: str | None, version: int) -> RuleEvent:
    if "kind" in data:
        data = {"v": events.SCHEMA_VERSION, **data}
        if data["kind"] == "rule.delete":
            data.setdefault("tenant", tenant)
            data.setdefault("version", version)
        elif isinstance(data.get("rule"), dict):
            data["rule"] = {"tenant": tenant, "version": version, **data["rule"]}
        return events.RULE_EVENT.validate_python(data)
    rule = {"version": version, **data}
    if tenant is not None:
        rule.setdefault("tenant", tenant)
    return events.RuleUpsert(rule=events.Rule.model_validate(rule))


def _problem(error: ErrorDetails) -> str:
    problem = describe(error, skip=("rule", "rule.upsert"))
    if error["type"] == "string_too_long" and problem.where == "text":
        return (f"text: over {events.MAX_RULE_TEXT_CHARS:,} characters; split it into several "
                "rules (one per article or section)")  # fmt: skip
    return f"{problem.where or 'row'}: {problem.text}"


def read_rule_file(
    path: Path, *, tenant: str | None = None, last_wins: bool = False
) -> ParsedRules:
    """Every valid event and every error (by line) of a rule file."""
    parsed = ParsedRules()
    text = _text(path)
    if isinstance(text, LineError):
        parsed.errors.append(text)
        return parsed
    rows = _csv_rows(text) if path.suffix.lower() == ".csv" else _jsonl_rows(text)
    default_version = int(time.time() * 1000)
    seen: dict[tuple[str, str], int] = {}  # target -> index in parsed.events
    for number, row in rows:
        if isinstance(row, LineError):
            parsed.errors.append(row)
            continue
        try:
            event = _event(row, tenant, default_version)
        except ValidationError as exc:
            parsed.errors.append(LineError(number, "; ".join(_problem(e) for e in exc.errors())))
            continue
        target = event.target.slot
        if target in seen:
            earlier = seen[target]
            if not last_wins:
                again = f"rule {target[0]}:{target[1]} is also on line {parsed.lines[earlier]}"
                parsed.errors.append(LineError(number, f"{again} (or pass --last-wins)"))
                continue
            parsed.events[earlier], parsed.lines[earlier] = event, number
            continue
        seen[target] = len(parsed.events)
        parsed.events.append(event)
        parsed.lines.append(number)
    return parsed
