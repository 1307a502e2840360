"""Kafka ACLs for SASL clusters, derived from what each service declares it reads and writes
(the same declarations that make ``docs/asyncapi.json``): each service's principal may write
the topics it publishes, read the topics it consumes (with its consumer groups), and nothing
else, so a compromised service cannot write where it never writes (``rules.events`` from
retrieval, ``exam.answers`` from the gateway, ...).

Rendered as ``kafka-acls.sh`` commands or as the chart's ``files/acls.yaml`` (Strimzi
``KafkaUser`` ACLs, ``kafka.strimziUsers``): ``alignstream topics acls``. Clients read without
a consumer group (assigned partitions). Creating topics and altering their configuration is
the topics Job's, run with an admin principal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from services.asyncapi import DOCUMENT_INSTANCE, document
from shared.topics import CLIENT_REPLY_PREFIX

CLIENTS = "clients"
"""The principal of trusted clients (the CLI, ``AlignstreamClient`` users)."""


@dataclass(frozen=True, order=True, slots=True)
class Acl:
    resource: str
    """``topic`` or ``group``."""
    name: str
    pattern: str
    """``literal`` or ``prefixed``."""
    operation: str
    """Kafka's operation name: ``Read``, ``Write``, ``Describe``, ``Create``, ``Delete``."""


def _topic(address: str) -> tuple[str, str]:
    """A channel address as an ACL resource: a client reply topic is any ``replies.*``."""
    if address.startswith(CLIENT_REPLY_PREFIX) and address.endswith(DOCUMENT_INSTANCE):
        return CLIENT_REPLY_PREFIX, "prefixed"
    return address, "literal"


def service_acls() -> dict[str, list[Acl]]:
    """Per principal (each service, and ``clients``): its ACLs, sorted."""
    doc = document()
    acls: dict[str, set[Acl]] = defaultdict(set)
    for key, operation in doc["operations"].items():
        address, _, principal = key.rpartition("@")
        name, pattern = _topic(address)
        verbs = ("Write",) if operation["action"] == "send" else ("Read",)
        for verb in (*verbs, "Describe"):
            acls[principal].add(Acl("topic", name, pattern, verb))
        if operation["action"] == "receive" and principal != CLIENTS:
            # Every consumer group of the principal starts with its name (``alignstream-ingest``,
            # ``alignstream-ingest-live``, generation's per-instance cancel groups, ...).
            acls[principal].add(Acl("group", f"alignstream-{principal}", "prefixed", "Read"))
    # The gateway creates its own reply topic, removes it when it stops, and removes those of
    # instances that died without doing so (``services/gateway/reply_janitor.py``).
    for verb in ("Create", "Delete"):
        acls["gateway"].add(Acl("topic", CLIENT_REPLY_PREFIX, "prefixed", verb))
    return {principal: sorted(found) for principal, found in sorted(acls.items())}


def kafka_acls_commands(principal_prefix: str, topic_prefix: str = "") -> list[str]:
    lines = []
    for principal, acls in service_acls().items():
        for acl in acls:
            name = acl.name if acl.resource == "group" else topic_prefix + acl.name
            lines.append(
                "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config $ADMIN_CONFIG "
                f"--add --allow-principal {principal_prefix}{principal} "
                f"--operation {acl.operation} --{acl.resource} {name} "
                f"--resource-pattern-type {acl.pattern}"
            )
    return lines


def chart_acls() -> dict[str, Any]:
    """``files/acls.yaml`` of the chart: Strimzi ACL entries per principal, topic names without
    the deployment prefix (the template adds ``kafka.topicPrefix``)."""
    rendered: dict[str, Any] = {}
    for principal, acls in service_acls().items():
        merged: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for acl in acls:
            merged[(acl.resource, acl.name, acl.pattern)].append(acl.operation)
        rendered[principal] = [
            {"type": resource, "name": name, "patternType": pattern, "operations": operations}
            for (resource, name, pattern), operations in merged.items()
        ]
    return rendered
