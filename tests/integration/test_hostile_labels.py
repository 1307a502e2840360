"""Labels (jurisdictions, locales) become TAG values in search queries: any label the contract
accepts is searchable without a query error, and a control character is refused by the
contract (a request naming one is dead-lettered, never retried forever)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from services.ingest.app import IngestService
from services.retrieval.app import RetrievalService
from shared import events
from shared.client import AlignstreamClient
from shared.settings import KafkaSettings
from tests.samples import sample_rule

LABEL: TypeAdapter[str] = TypeAdapter(events.Label)


def _valid(text: str) -> bool:
    try:
        LABEL.validate_python(text)
    except ValidationError:
        return False
    return True


labels = st.text(min_size=1, max_size=64).filter(_valid)


def test_control_characters_are_refused_in_labels() -> None:
    for bad in ("a\x00b", "ú\x11ÿ", "\x1c", "tab\x7f"):
        with pytest.raises(ValidationError):
            events.RuleScope(locales=(bad,))
    assert events.RuleScope(locales=("zh-CN", "北京市", "\U000f1e59§", "a\u200db")).locales


async def test_any_accepted_label_is_searchable(
    ingest: IngestService, retrieval: RetrievalService, kafka_settings: KafkaSettings
) -> None:
    async with AlignstreamClient(kafka_settings) as client:
        await client.publish_rules([events.RuleUpsert(rule=sample_rule())], wait=True)
    retriever = retrieval.retriever
    assert retriever is not None
    vector = (await retrieval.embedder.embed(["refund"]))[0].tobytes()
    tried: list[tuple[str, ...]] = []

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(st.lists(labels, min_size=1, max_size=4), st.lists(labels, max_size=3))
    def draw(jurisdictions: list[str], locales: list[str]) -> None:
        tried.append((*jurisdictions, *locales))
        scopes.append(events.RuleScope(jurisdictions=tuple(jurisdictions), locales=tuple(locales)))

    scopes: list[events.RuleScope] = []
    draw()
    for scope in scopes:  # each search must run (finding nothing is fine)
        await retriever.retrieve("acme", scope, "refund", vector, today=date(2026, 1, 1))
    assert len(tried) >= 100
