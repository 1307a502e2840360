"""How many copies a new topic gets. Unset (``KafkaSettings.replication_factor``), the broker's
own ``default.replication.factor`` (what managed services set for their durability rules:
Confluent Cloud refuses fewer than 3; MSK with ``min.insync.replicas=2`` cannot acknowledge an
``acks=all`` write to a topic of 1), or, where the broker does not report it, as many copies as
the cluster has brokers, up to 3. aiokafka's CreateTopics (v3) cannot ask for the broker's
default itself (-1 needs v4), hence the lookup."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import KafkaError

from shared.kafka_configs import config_values
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)
DEFAULT_KEY = "default.replication.factor"
MOST_COPIES = 3


def _node_ids(cluster: dict[str, Any]) -> list[int]:
    return [int(b.get("node_id", b.get("nodeId", -1))) for b in cluster.get("brokers", [])]


async def _reported_default(admin: AIOKafkaAdminClient, node: int) -> int | None:
    try:
        found = await config_values(admin, ConfigResourceType.BROKER, [str(node)], DEFAULT_KEY)
    except KafkaError as exc:  # no DescribeConfigs right, or a broker that does not answer it
        log.info("broker configs not readable", extra={"error": str(exc)})
        return None
    value = found.get(str(node), "")
    return int(value) if value.isdigit() else None


async def replication_factor(admin: AIOKafkaAdminClient, settings: KafkaSettings) -> int:
    """The replication factor for topics created now (``admin`` started)."""
    if settings.replication_factor is not None:
        return settings.replication_factor
    nodes = _node_ids(await admin.describe_cluster())
    reported = await _reported_default(admin, nodes[0]) if nodes else None
    return reported or max(1, min(MOST_COPIES, len(nodes)))
