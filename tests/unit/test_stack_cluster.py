"""``stack up --redis-cluster``: six Valkey nodes on the Redis port and the five after it, the
environment names the cluster, and ports whose bus ports would not exist are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.devstack.process import StackError
from shared.devstack.servers import LocalStack
from shared.settings import RedisSettings


def test_the_cluster_stack_names_six_nodes_and_a_cluster_url(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, kafka_port=30_200, redis_port=30_100, redis_cluster=True)
    redis = [s for s in stack.servers if s.name.startswith("redis")]
    assert [s.port for s in redis] == list(range(30_100, 30_106))
    env = stack.environment()
    assert env["REDIS_URL"] == "redis://127.0.0.1:30100/0"
    settings = RedisSettings(url=env["REDIS_URL"], cluster=env["ALIGNSTREAM_REDIS_CLUSTER"])
    assert settings.cluster
    assert "ALIGNSTREAM_REDIS_CLUSTER" not in LocalStack(tmp_path).environment()


def test_ports_without_room_for_bus_ports_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="bus port"):
        LocalStack(tmp_path, redis_port=60_000, redis_cluster=True)


def test_a_prefix_with_braces_is_refused_in_settings() -> None:
    with pytest.raises(ValueError, match="pattern"):
        RedisSettings(key_prefix="a{b}")


def test_several_brokers_sit_behind_the_kafka_port_and_are_remembered(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, kafka_port=30_300, s3_port=30_400, brokers=3)
    assert stack.kafka.address == "127.0.0.1:30300"  # clients connect to the front
    assert [b.port for b in stack.brokers] == [30_301, 30_302, 30_303]
    assert {b.front_port for b in stack.brokers} == {30_300}
    assert stack.environment()["KAFKA_BOOTSTRAP"] == "127.0.0.1:30300"
    (tmp_path / "ports.json").write_text('{"kafka": 30300, "s3": 30400, "brokers": 3}')
    again = LocalStack.remembered(tmp_path)
    assert (len(again.brokers), again.durable) == (3, True)
    with pytest.raises(StackError, match="durable"):
        LocalStack(tmp_path, brokers=3)  # no shared store: refused
