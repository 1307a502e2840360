"""Reading one setting of topics or brokers from the cluster (DescribeConfigs)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType


async def config_values(
    admin: AIOKafkaAdminClient, kind: ConfigResourceType, names: list[str], key: str
) -> dict[str, str]:
    """Each named resource's ``key`` as the cluster reports it (resources that report none are
    left out). Raises ``KafkaError`` when the principal may not describe configs or the broker
    does not answer it: callers decide what an unreported setting means."""
    resources = [ConfigResource(kind, name, {key: None}) for name in names]
    values: dict[str, str] = {}
    for response in await admin.describe_configs(resources):
        for code, _message, _type, name, entries in response.resources:
            for entry in entries if code == 0 else ():
                if entry[0] == key:
                    values[name] = entry[1]
    return values
