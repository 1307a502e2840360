"""A local Redis Cluster: Valkey nodes with the search modules, formed from Python (the wheel
has no ``valkey-cli``): every node meets the first, the primaries split the 16,384 slots, each
replica follows its primary. Each node's cluster bus listens on its port + 10,000, so ports are
chosen below 55,536 with both free."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from shared.devstack.process import StackError
from shared.devstack.servers import ValkeyServer

SLOTS = 16_384
BUS_OFFSET = 10_000


def cluster_port(attempts: int = 200) -> int:
    """A loopback port whose cluster bus port is free too."""
    for _ in range(attempts):
        port = random.randint(20_000, 45_000)
        try:
            for candidate in (port, port + BUS_OFFSET):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise StackError("no free port pair for a cluster node")


@dataclass
class ValkeyCluster:
    state_dir: Path
    primaries: int = 3
    replicas_per_primary: int = 1
    base_port: int | None = None
    """The nodes' ports in a row from here (``stack up --redis-cluster``); None: free ones."""

    def __post_init__(self) -> None:
        count = self.primaries * (1 + self.replicas_per_primary)
        if self.base_port is not None and self.base_port + count - 1 + BUS_OFFSET > 65_535:
            raise StackError(f"cluster ports from {self.base_port}: each node's bus port (its "
                             f"port + {BUS_OFFSET}) must stay below 65,536")  # fmt: skip
        ports = ([self.base_port + i for i in range(count)] if self.base_port is not None
                 else [cluster_port() for _ in range(count)])  # fmt: skip
        self.nodes = [ValkeyServer(self.state_dir / f"node{i}", port, cluster=True)
                      for i, port in enumerate(ports)]  # fmt: skip
        for i, node in enumerate(self.nodes):
            node.name = f"redis-{i}"

    @property
    def url(self) -> str:
        return self.nodes[0].address

    def node_id(self, node: ValkeyServer) -> str:
        found = self._do(node, "CLUSTER MYID")
        return found.decode() if isinstance(found, bytes) else str(found)

    def _do(self, node: ValkeyServer, *args: object) -> Any:
        with redis.Redis(port=node.port, protocol=2, socket_timeout=2) as client:
            return client.execute_command(*args)

    def up(self, timeout_s: float = 60.0) -> None:
        """Start the nodes; form the cluster unless they formed one before (their
        ``nodes.conf`` keeps it across restarts)."""
        for node in self.nodes:
            node.start(timeout_s)
        if int(self._do(self.nodes[0], "CLUSTER INFO").get("cluster_slots_assigned", 0)):
            self._wait(self.healthy, timeout_s)
            return
        first = self.nodes[0].port
        for node in self.nodes[1:]:
            self._do(node, "CLUSTER MEET", "127.0.0.1", first)
        per = SLOTS // self.primaries
        for i, node in enumerate(self.nodes[: self.primaries]):
            last = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * per - 1
            self._do(node, "CLUSTER ADDSLOTSRANGE", i * per, last)
        self._wait(lambda: all(self._knows_all(n) for n in self.nodes), timeout_s)
        for i, replica in enumerate(self.nodes[self.primaries :]):
            primary = self.nodes[i % self.primaries]
            self._do(replica, "CLUSTER REPLICATE", self.node_id(primary))
        self._wait(self.healthy, timeout_s)

    def _knows_all(self, node: ValkeyServer) -> bool:
        known = self._do(node, "CLUSTER NODES")  # parsed by redis-py: address -> node
        return len(known) == len(self.nodes)

    def healthy(self) -> bool:
        try:
            return all(self._do(n, "CLUSTER INFO").get("cluster_state") == "ok"
                       for n in self.nodes if n.status().running)  # fmt: skip
        except (redis.RedisError, OSError):
            return False

    def _wait(self, done: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise StackError("the Redis cluster did not form in time")
            time.sleep(0.1)

    def owner_port(self, key: str) -> int | None:
        """The port of the primary that serves ``key``'s slot, as a live node sees it."""
        for node in self.nodes:
            if not node.status().running:
                continue
            try:
                slot = self._do(node, "CLUSTER KEYSLOT", key)
                for start, end, primary, *_ in self._do(node, "CLUSTER SLOTS"):
                    if int(start) <= int(slot) <= int(end):
                        return int(primary[1])
            except (redis.RedisError, OSError):
                continue
        return None

    def migrate_slot(self, key: str, to_port: int) -> None:
        """Move ``key``'s slot, keys included, to the primary on ``to_port`` (what
        ``valkey-cli --cluster reshard`` does for one slot)."""
        source = next(n for n in self.nodes if n.port == self.owner_port(key))
        target = next(n for n in self.nodes if n.port == to_port)
        slot = self._do(source, "CLUSTER KEYSLOT", key)
        source_id, target_id = self.node_id(source), self.node_id(target)
        self._do(target, "CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        self._do(source, "CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := self._do(source, "CLUSTER GETKEYSINSLOT", slot, 100):
            self._do(source, "MIGRATE", "127.0.0.1", to_port, "", 0, 10_000, "KEYS", *keys)
        for node in self.nodes[: self.primaries]:
            self._do(node, "CLUSTER SETSLOT", slot, "NODE", target_id)
        self._wait(lambda: self.owner_port(key) == to_port, 30.0)

    def wait_for_owner_change(self, key: str, old_port: int, timeout_s: float = 30.0) -> None:
        """Until a replica took over ``key``'s slot from the primary on ``old_port``."""
        self._wait(lambda: self.owner_port(key) not in (None, old_port) and self.healthy(),
                   timeout_s)  # fmt: skip

    def down(self) -> None:
        for node in self.nodes:
            node.stop()
