"""Kafka ACLs: least privilege derived from what each service declares, the chart's copy of them
in step with the code, and Strimzi KafkaUsers rendered only when asked, under the topic prefix."""

from __future__ import annotations

import yaml

from services.acls import Acl, chart_acls, service_acls
from services.cli.topics import ACLS_HEADER
from tests.unit.chart import CHART, render


def writes(principal: str) -> set[str]:
    return {a.name for a in service_acls()[principal] if a.operation == "Write"}


def test_each_service_writes_only_what_it_publishes() -> None:
    assert writes("retrieval") == {"chat.grounded", "chat.responses", "chat.requests.dlq"}
    assert "rules.events" not in writes("retrieval")
    assert {"audit.log", "rules.indexed"} <= writes("ingest")
    assert "audit.entries" not in writes("ingest")
    assert {"audit.entries", "exam.answers", "chat.responses", "replies."} <= writes("generation")
    assert "audit.log" not in writes("generation") | writes("clients") | writes("gateway")
    assert {"rules.events", "rules.live", "chat.requests", "chat.cancels"} <= writes("gateway")
    assert "exam.answers" not in writes("gateway") | writes("clients")


def test_consumers_read_their_topics_with_their_own_groups() -> None:
    ingest = service_acls()["ingest"]
    assert Acl("topic", "audit.entries", "literal", "Read") in ingest
    assert Acl("group", "alignstream-ingest", "prefixed", "Read") in ingest
    assert Acl("topic", "replies.", "prefixed", "Create") in service_acls()["gateway"]
    assert not [a for a in service_acls()["clients"] if a.resource == "group"]


def test_the_charts_acls_are_the_codes() -> None:
    committed = (CHART / "files" / "acls.yaml").read_text()
    assert committed == ACLS_HEADER + yaml.safe_dump(chart_acls(), sort_keys=True), (
        "files/acls.yaml is stale: alignstream topics acls --format chart > "
        "deploy/helm/alignstream/files/acls.yaml"
    )


def test_strimzi_users_are_rendered_only_when_enabled_under_the_topic_prefix() -> None:
    assert not [d for d in render() if d["kind"] == "KafkaUser"]
    users_on = {"enabled": True, "cluster": "main"}
    docs = render({"kafka": {"topicPrefix": "prod.", "strimziUsers": users_on},
                   "services": {"grading": {"enabled": False}}})  # fmt: skip
    users = {d["metadata"]["name"]: d for d in docs if d["kind"] == "KafkaUser"}
    assert "rel-alignstream-grading" not in users
    ingest = users["rel-alignstream-ingest"]
    assert ingest["metadata"]["labels"]["strimzi.io/cluster"] == "main"
    acls = ingest["spec"]["authorization"]["acls"]
    audit = [a for a in acls if a["resource"]["name"] == "prod.audit.log"]
    assert audit[0]["operations"] == ["Describe", "Write"]
    groups = [a for a in acls if a["resource"]["type"] == "group"]
    assert groups[0]["resource"]["name"] == "alignstream-ingest"  # groups carry no prefix
