"""What a request is grounded in: scope -> filter -> hybrid search -> order -> budget.

One path for the retrieval service and ``alignstream rules search``, so the CLI shows exactly
what a request would get.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from shared.cache import Refreshing
from shared.events import RetrievedRule, RuleScope, SearchedScope
from shared.memory.jurisdictions import JurisdictionMap, filter_values
from shared.memory.labels import tag_values
from shared.memory.query import RuleFilter
from shared.memory.search import Hit, RuleSearcher, order_hits, pack_to_budget
from shared.memory.trees import JurisdictionStore
from shared.tokens import TokenCounter


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class RetrievalOptions:
    lexical: bool = True
    """Fuse a full-text (BM25) search with the vector search."""
    candidates: int = 20
    """Candidates taken from each search before fusion (at least top_k x candidates_factor)."""
    candidates_factor: int = 2
    infer_jurisdiction: bool = True
    """Resolve the jurisdictions a question names when its request names none."""
    refresh_s: float = 5.0
    """How long a tenant's tree (or its rules' jurisdictions) is reused before re-reading."""


@dataclass(frozen=True, slots=True)  # pragma: no mutate (the flags change no behaviour)
class Retrieved:
    rules: tuple[RetrievedRule, ...]
    scope: SearchedScope
    candidates: tuple[Hit, ...]
    """Every fused candidate in order, before the budget (for ``--explain``)."""


class RuleRetriever:
    def __init__(
        self,
        searcher: RuleSearcher,
        trees: JurisdictionStore,
        options: RetrievalOptions = RetrievalOptions(),
        counter: TokenCounter | None = None,
    ) -> None:
        self.searcher = searcher
        self.trees = trees
        self.options = options
        self.counter = counter
        self._maps: Refreshing[str, JurisdictionMap] = Refreshing(self._read_map, options.refresh_s)

    async def jurisdictions(self, tenant: str) -> JurisdictionMap:
        """The tenant's declared tree, else the implicit tree of its rules' jurisdictions."""
        return await self._maps.get(tenant)

    async def _read_map(self, tenant: str) -> JurisdictionMap:
        tree = await self.trees.get(tenant)
        if tree is not None:
            return JurisdictionMap.from_tree(tree)
        return JurisdictionMap.implicit(await self.searcher.known_jurisdictions(tenant))

    async def scope(self, tenant: str, scope: RuleScope, query: str) -> SearchedScope:
        tree = await self.jurisdictions(tenant)
        return tree.scope_for(scope, query, infer=self.options.infer_jurisdiction)

    async def retrieve(
        self, tenant: str, scope: RuleScope, query: str, vector: bytes, *, today: date
    ) -> Retrieved:
        searched = await self.scope(tenant, scope, query)
        flt = RuleFilter(
            tenant=tenant,
            domains=scope.domains,
            jurisdictions=filter_values(searched),
            locales=tag_values(scope.locales),
            as_of=scope.as_of or today,
            change_set=scope.change_set,
        )
        depth = max(self.options.candidates, scope.top_k * self.options.candidates_factor)
        hits = await self.searcher.hybrid(query, vector, flt, k=depth, lexical=self.options.lexical)
        ordered = order_hits(hits, min_score=scope.min_score)
        rules = pack_to_budget(
            ordered, top_k=scope.top_k, token_budget=scope.token_budget, counter=self.counter
        )
        return Retrieved(tuple(rules), searched, tuple(ordered))
