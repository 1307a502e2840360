"""docs/asyncapi.json is what the services declare, and agrees with shared/topics.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from services.asyncapi import DOCUMENT_INSTANCE, document, rendered
from shared.topics import TOPICS, TopicSpec, all_topics, client_replies_spec

COMMITTED = Path(__file__).parents[2] / "docs" / "asyncapi.json"


def documented_topics() -> dict[str, TopicSpec]:
    """Every topic of ``shared/topics.py``, with the gateway instance's reply topic."""
    return {spec.name: spec for spec in (*all_topics(), client_replies_spec(DOCUMENT_INSTANCE))}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return document()


def _target(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[unquote(part)]
    return node


def _models(doc: dict[str, Any], payload: dict[str, Any]) -> set[str]:
    """The event models a payload schema names (one, or the members of a union)."""
    schema = _target(doc, payload["$ref"]) if "$ref" in payload else payload
    members = schema.get("anyOf") or schema.get("oneOf")
    if members:
        return set().union(*(_models(doc, member) for member in members))
    return {schema["title"]}


def test_the_committed_document_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == rendered(), (
        "docs/asyncapi.json is stale: alignstream topics asyncapi --out docs/asyncapi.json"
    )


def test_every_channel_is_a_topic_with_its_models_key_and_configuration(
    doc: dict[str, Any],
) -> None:
    specs = documented_topics()
    for channel in doc["channels"].values():
        spec = specs[channel["address"]]  # no channel outside shared/topics.py
        kafka = channel["bindings"]["kafka"]
        assert kafka["partitions"] == spec.partitions
        assert kafka["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        for ref in channel["messages"].values():
            message = _target(doc, ref["$ref"])
            assert _models(doc, message["payload"]) == {m.__name__ for m in spec.value_models}
            assert spec.key in message["bindings"]["kafka"]["key"]["description"]


def test_every_topic_has_a_producer_and_a_consumer(doc: dict[str, Any]) -> None:
    actions: dict[str, set[str]] = {}
    consumed_by_services = set()
    for key, operation in doc["operations"].items():
        address = _target(doc, operation["channel"]["$ref"])["address"]
        actions.setdefault(address, set()).add(operation["action"])
        if operation["action"] == "receive" and not key.startswith(f"{address}@clients"):
            consumed_by_services.add(address)
    for spec in TOPICS:
        assert actions.get(spec.name) == {"send", "receive"}, spec.name
    # A service dead-letters what it cannot process: each topic it consumes has a DLQ it writes.
    assert consumed_by_services
    specs = documented_topics()
    for address in consumed_by_services:
        assert actions.get(specs[address].dead_letter().name) == {"send"}, address
