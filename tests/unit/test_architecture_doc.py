"""docs/architecture.md stays true: every path it names exists, the storage it names is the
index's, and its new-strategy recipe names every place a strategy must be added."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from services.gateway.translate import EXAM_ONLY, MODEL_STRATEGIES
from shared.events import Strategy
from shared.memory.schema import RuleSchema
from shared.strategies import STRATEGIES

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


def test_the_storage_the_doc_names_is_the_index_definition() -> None:
    """The flow says how rules are stored; the index is created on exactly that kind of key."""
    args = RuleSchema("alignstream", 512, "use").create_args("acme")
    on = str(args[args.index("ON") + 1])
    stored_as = {"HASH": "hashes", "JSON": "JSON"}[on]
    assert f"Redis ({stored_as} + HNSW + full text)" in DOC.read_text(encoding="utf-8")


def _strategy_key(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Attribute) and (
        (isinstance(node.value, ast.Name) and node.value.id == "Strategy")
        or (isinstance(node.value, ast.Attribute) and node.value.attr == "Strategy")
    )


def _first_argument(node: ast.expr) -> ast.expr | None:
    """``Spec(first, ...)``'s first argument (a class's constructor: a capitalized name)."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Name):
        return node.args[0] if node.func.id[:1].isupper() else None
    return None


def per_strategy_tables() -> set[str]:
    """Modules holding a table keyed by strategy (a dict or a spec per member): where a new
    strategy has to be added."""
    found = set()
    for folder in ("services", "shared"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Dict):
                    keys = list(node.keys)
                elif isinstance(node, ast.Tuple | ast.List | ast.Set):  # (Spec(Strategy.X), ...)
                    keys = [_first_argument(e) for e in node.elts]
                else:
                    continue
                if sum(map(_strategy_key, keys)) >= 2:
                    found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_new_strategy_recipe_names_every_table_a_strategy_needs() -> None:
    text = DOC.read_text(encoding="utf-8")
    recipe = text[text.index("- **A new strategy**") :].split("\n- **", 1)[0]
    tables = per_strategy_tables()
    assert {"shared/strategies.py", "services/gateway/translate.py"} <= tables
    assert [t for t in sorted(tables) if f"`{t}`" not in recipe] == []


def test_every_strategy_is_served_or_refused_with_a_reason_by_the_gateway() -> None:
    """The recipe's gateway step holds: no strategy is left unanswered (RAW, the messages as
    given, is named by requests' ``alignstream.strategy`` and served without a model card)."""
    answered = set(MODEL_STRATEGIES) | set(EXAM_ONLY) | {Strategy.RAW}
    assert set(Strategy) <= answered
    assert set(Strategy) == set(STRATEGIES)
