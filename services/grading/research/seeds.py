"""Query files of research jobs, read from the tenant's data folder with bounds.

Accepted: one query per line (DRPO's ``mal_train.txt``); a JSON array of objects with
``instruction``, ``query`` or ``prompt`` (DRPO's alpaca and LIMA seeds); JSONL objects with one
of those fields. Errors name the file as the job gave it, and the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.grading.datasets import DatasetError, dataset_path, read_jsonl

MAX_QUERIES = 100_000
MAX_QUERY_CHARS = 8_000
_FIELDS = ("prompt", "query", "instruction")


def _text(row: Any, shown: str, where: str) -> str:
    if isinstance(row, dict):
        for name in _FIELDS:
            if isinstance(row.get(name), str) and row[name].strip():
                return str(row[name]).strip()
    raise DatasetError(f"{shown}{where}: expected an object with one of {', '.join(_FIELDS)}")


def read_queries(root: Path, tenant: str, given: str) -> list[str]:
    """The queries of the file a job names, inside the tenant's folder of the data root."""
    return read_query_file(dataset_path(root, tenant, given), given)


def read_query_file(path: Path, given: str) -> list[str]:
    """The queries of ``path``; errors name it as ``given``."""
    if not path.is_file():
        raise DatasetError(f"{given}: no such file")
    if path.stat().st_size > MAX_QUERIES * MAX_QUERY_CHARS:
        raise DatasetError(f"{given}: too large")
    if path.suffix == ".jsonl":
        queries = [_text(row, given, f":{line}") for line, row in read_jsonl(path, given)]
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{given}: not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise DatasetError(f"{given}: expected a JSON array of objects")
        queries = [_text(row, given, f" item {i + 1}") for i, row in enumerate(data)]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{given}: not UTF-8 text") from exc
        queries = [line.strip() for line in lines if line.strip()]
    for number, query in enumerate(queries, 1):
        if len(query) > MAX_QUERY_CHARS:
            raise DatasetError(f"{given}: query {number} is over {MAX_QUERY_CHARS} characters")
    if len(queries) > MAX_QUERIES:
        raise DatasetError(f"{given}: more than {MAX_QUERIES} queries")
    return queries
