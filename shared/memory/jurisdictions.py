"""Jurisdictions as a tree: names -> nodes, and a node -> what a search under it may see.

A node is a path (``CN/山东/济南``). A question scoped to a node sees the rules of that node, of
its ancestors and ``global``, never of its siblings or descendants. A tenant declares its tree
(``JurisdictionTree``); a tenant that declared none has the implicit tree of its rules'
jurisdictions. Names resolve to nodes case- and width-insensitively (``normalize_label``):
the full path, the last segment, any declared alias, or a compound of a node's name and a
descendant's (``山东济南`` -> ``CN/山东/济南``, as OPO's A-Law writes locations).

Pure: unit-tested without Redis.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.events import (
    GLOBAL_JURISDICTION,
    JurisdictionTree,
    RuleScope,
    SearchedScope,
    ancestors_or_self,
)
from shared.language import is_cjk
from shared.memory.labels import normalize_label

MAX_NAME_CHARS = 255
"""Longer names in a request never match (and are reported cut to this length)."""


def _joins(ch: str) -> bool:
    """Whether ``ch`` continues a word of a script written with spaces (a CJK name may sit
    inside a longer run of CJK text: 北京 in 北京市的)."""
    return ch.isalnum() and not is_cjk(ch)


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class Resolved:
    nodes: tuple[str, ...]
    unresolved: tuple[str, ...]


@dataclass(slots=True)  # pragma: no mutate (the flag changes no behaviour)
class JurisdictionMap:
    """The nodes of one tenant's tree and every name they answer to."""

    paths: dict[str, str]
    """Normalized path -> path as declared."""
    default_scope: tuple[str, ...] = ()
    version: int = 0
    """Version of the declared tree (0: implicit)."""
    unplaced: str = "default"
    """What a question that names no node is searched under (``JurisdictionTree.unplaced``)."""
    _names: dict[str, set[str]] = field(default_factory=dict)
    _pattern: re.Pattern[str] | None = None

    @classmethod
    def from_tree(cls, tree: JurisdictionTree) -> JurisdictionMap:
        aliases = {node.path: node.aliases for node in tree.nodes}
        return cls.build(aliases, tree.default_scope, version=tree.version,
                         unplaced=tree.unplaced)  # fmt: skip

    @classmethod
    def implicit(cls, jurisdictions: Iterable[str]) -> JurisdictionMap:
        """The tree of a tenant that declared none: its rules' jurisdictions and their
        ancestors, named by path and last segment; no default scope."""
        paths: dict[str, tuple[str, ...]] = {}
        for value in jurisdictions:
            if value and normalize_label(value) != GLOBAL_JURISDICTION:
                for path in ancestors_or_self(value):
                    paths.setdefault(path, ())
        return cls.build(paths, ())

    @classmethod
    def build(
        cls,
        aliases: Mapping[str, Iterable[str]],
        default_scope: Iterable[str],
        *,
        version: int = 0,
        unplaced: str = "default",
    ) -> JurisdictionMap:
        paths = {normalize_label(p): p for p in aliases}
        names: dict[str, set[str]] = defaultdict(set)
        for path, extra in aliases.items():
            key = normalize_label(path)
            for name in (path, path.rpartition("/")[2], *extra):
                folded = normalize_label(name)
                if folded and folded != GLOBAL_JURISDICTION:
                    names[folded].add(key)
        scope = tuple(normalize_label(p) for p in default_scope)
        return cls(paths, scope, version, unplaced, dict(names))

    # ------------------------------------------------------------------ names -> nodes

    def resolve(self, name: str) -> str | None:
        """The node a name means (normalized path), or None when it names none or several
        unrelated ones. A name of a node and of its descendant (吉林 the province and the city)
        means the higher one."""
        folded = normalize_label(name[:MAX_NAME_CHARS])
        if folded in self.paths:
            return folded
        found = self._one_of(self._names.get(folded, set()))
        return found if found is not None else self._compound(folded, "")

    def _one_of(self, candidates: Iterable[str]) -> str | None:
        ordered = sorted(candidates, key=lambda p: p.count("/"))
        if not ordered:
            return None
        top = ordered[0]
        # Several candidates: only a chain of one node and its descendants is unambiguous.
        if all(p == top or p.startswith(top + "/") for p in ordered):
            return top
        return None

    def _compound(self, folded: str, under: str) -> str | None:
        """``山东济南``: a name of a node, then a name of one of its descendants."""
        for cut in range(len(folded) - 1, 0, -1):
            head, rest = folded[:cut], folded[cut:]
            # Sorted: the same name resolves the same way in every process (set order is not).
            for node in sorted(self._names.get(head, ())):
                if under and not node.startswith(under + "/"):
                    continue
                below = self._below(node, rest)
                if below is not None:
                    return below
        return None

    def _below(self, node: str, name: str) -> str | None:
        candidates = {p for p in self._names.get(name, ()) if p.startswith(node + "/")}
        found = self._one_of(candidates)
        return found if found is not None else self._compound(name, node)

    def resolve_all(self, names: Iterable[str]) -> Resolved:
        nodes: list[str] = []
        unresolved: list[str] = []
        for name in names:
            if normalize_label(name) == GLOBAL_JURISDICTION:
                continue
            node = self.resolve(name)
            if node is None:
                unresolved.append(name[:MAX_NAME_CHARS])
            else:
                nodes.append(node)
        return Resolved(tuple(dict.fromkeys(nodes)), tuple(dict.fromkeys(unresolved)))

    def mentioned(self, text: str) -> tuple[str, ...]:
        """Nodes whose names occur in the text (a Latin name as a whole word), in order of
        first mention."""
        if not self._names:
            return ()
        folded = normalize_label(text)
        nodes: list[str] = []
        for match in self._regex().finditer(folded):
            start, end = match.span()
            name = match.group(0)
            if start > 0 and _joins(name[0]) and _joins(folded[start - 1]):
                continue
            if end < len(folded) and _joins(name[-1]) and _joins(folded[end]):
                continue
            node = self._one_of(self._names[name])
            if node is not None:
                nodes.append(node)
        return tuple(dict.fromkeys(nodes))

    def _regex(self) -> re.Pattern[str]:
        if self._pattern is None:
            names = sorted(self._names, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(n) for n in names))
        return self._pattern

    # ------------------------------------------------------------------ nodes -> filter

    def display(self, node: str) -> str:
        return self.paths.get(node, node)

    def searched(self, nodes: Iterable[str]) -> tuple[str, ...]:
        """What a search under these nodes matches: each node, its ancestors and global."""
        values: list[str] = [GLOBAL_JURISDICTION]
        for node in nodes:
            values.extend(normalize_label(p) for p in ancestors_or_self(node))
        return tuple(dict.fromkeys(values))

    def scope_for(self, scope: RuleScope, question: str, *, infer: bool = True) -> SearchedScope:
        """The scope a request is searched under. Its own names first (unresolved ones are
        reported, never widened); else the nodes its question names; else, by the tenant's
        ``unplaced`` policy, its whole tree, or the default scope (``global`` only without
        one)."""
        if scope.any_jurisdiction:
            return SearchedScope(source="any")
        if scope.jurisdictions:
            resolved = self.resolve_all(scope.jurisdictions)
            return self._scope("request", resolved.nodes, resolved.unresolved)
        if infer:
            named = self.mentioned(question)
            if named:
                return self._scope("question", named)
        if self.unplaced == "tree":
            return SearchedScope(source="tree")
        if self.default_scope:
            return self._scope("default", self.default_scope)
        return self._scope("global", ())

    def _scope(
        self, source: str, nodes: Iterable[str], unresolved: tuple[str, ...] = ()
    ) -> SearchedScope:
        nodes = tuple(nodes)
        return SearchedScope.model_validate(
            {
                "source": source,
                "nodes": tuple(self.display(n) for n in nodes),
                "searched": tuple(self.display(v) for v in self.searched(nodes)),
                "unresolved": unresolved,
            }
        )


def filter_values(scope: SearchedScope) -> tuple[str, ...] | None:
    """The jurisdiction TAG values a search under the scope matches (None: any)."""
    if scope.every_jurisdiction:
        return None
    return tuple(dict.fromkeys(normalize_label(v) for v in scope.searched)) or (
        GLOBAL_JURISDICTION,
    )
