"""docs/architecture.md stays true: every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "architecture.md"
SERVICES = ("ingest", "retrieval", "generation", "grading", "gateway")

# A code span that names a file or folder of the tree: has a slash or a known ending.
PATH = re.compile(r"`([\w./<>-]+/[\w./-]*|[\w/-]+\.(?:py|md|json|yml|yaml|toml))`")


def named_paths(text: str) -> list[str]:
    return [p for p in PATH.findall(text) if "<" not in p]


def test_the_doc_names_paths() -> None:
    paths = named_paths(DOC.read_text(encoding="utf-8"))
    assert len(paths) >= 30  # the tour is about files; a rewrite that drops them fails here
    assert named_paths("see `shared/events/` and `x.py`, not `kind`") == ["shared/events/", "x.py"]


def exists(path: str) -> bool:
    """A path from the root; a bare module name (``app.py``) is one every service has."""
    if "/" not in path and path.endswith(".py"):
        return all((ROOT / "services" / service / path).exists() for service in SERVICES)
    return (ROOT / path).exists()


def test_every_path_in_the_architecture_doc_exists() -> None:
    missing = [p for p in named_paths(DOC.read_text(encoding="utf-8")) if not exists(p)]
    assert missing == []
