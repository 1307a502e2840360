"""Reading rule files (JSONL or CSV) into rule events, with errors that name the line.

A JSONL line is either a rule (its fields as in ``shared.events.Rule``; becomes an upsert) or a
full rule event with ``kind`` (``rule.upsert`` / ``rule.delete``). A CSV has one rule per row with
``Rule`` field names as columns (``tags`` separated by ``;``). Missing ``tenant`` takes the given
default; missing ``version`` takes the current time in milliseconds, which keeps versions
monotonic across successive publishes.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared import events
from shared.jsonl import json_objects

RuleEvent = events.RuleUpsert | events.RuleDelete


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ParsedRules:
    events: list[RuleEvent]
    errors: list[LineError]


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) pairs; a row that is not an object is returned as an error text."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                cleaned: dict[str, Any] = {
                    k: v for k, v in row.items() if k and v not in ("", None)
                }
                if "tags" in cleaned:
                    cleaned["tags"] = [t.strip() for t in cleaned["tags"].split(";") if t.strip()]
                yield reader.line_num, cleaned
        return
    yield from json_objects(path)


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


def read_rule_file(path: Path, *, tenant: str | None = None) -> ParsedRules:
    """Every valid event and every error (by line) of a rule file."""
    default_version = int(time.time() * 1000)
    parsed = ParsedRules([], [])
    for number, row in _rows(path):
        if isinstance(row, str):
            parsed.errors.append(LineError(number, row))
            continue
        try:
            parsed.events.append(_event(row, tenant, default_version))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}"
                for err in exc.errors()
            )
            parsed.errors.append(LineError(number, problems))
    return parsed
