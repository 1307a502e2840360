"""The chart's bundled Redis, started as the chart starts it: the StatefulSet's uid, a read-only
root (only its volumes and /tmp writable), its REDIS_ARGS and its /data volume. The image's own
server binary (redis-stack-server) needs libssl1.1, which this machine lacks: the server here is
Valkey with the image's modules (RedisJSON 2.8, RediSearch 2.10, ../shared/INFRA.md), so what is
tested is the chart's user, filesystem, arguments and volume, and the search the services use.

The bundled Kafka (apache/kafka) cannot be run here at all: no Apache Kafka distribution reaches
this machine (PyPI, Debian and npm only; Maven Central is not reachable). Its configuration is
checked by rendering (tests/unit/test_deploy*.py)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.commands.search.field import TagField, TextField
from redis.commands.search.index_definition import IndexDefinition, IndexType

from shared.devstack.process import free_port
from shared.devstack.servers import redis_modules, valkey_binary
from tests.integration.test_read_only_root import WRAPPER, read_only_root_available
from tests.unit.chart import container, of_kind, render

PASSWORD = "bundled-secret"


def chart_redis() -> tuple[dict[str, object], list[str], set[str]]:
    """The bundled Redis container's security context, server arguments and mounted paths."""
    box = container(of_kind(render(), "StatefulSet")["rel-alignstream-redis"])
    env = {e["name"]: e.get("value") for e in box["env"]}
    args = str(env["REDIS_ARGS"]).replace("$(REDIS_PASSWORD)", PASSWORD)  # as the kubelet does
    return box["securityContext"], shlex.split(args), {m["mountPath"] for m in box["volumeMounts"]}


@pytest.fixture
def volume() -> Iterator[Path]:
    """The StatefulSet's /data volume: a folder only the chart's user owns (fsGroup)."""
    root = Path(tempfile.mkdtemp(prefix="bundled-redis-", dir="/tmp"))
    root.chmod(0o755)  # the server's user must reach its volume (pytest's tmp_path is 0700)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_bundled_redis_serves_search_as_the_chart_runs_it(volume: Path) -> None:
    if not read_only_root_available():
        pytest.skip("needs `unshare --mount` (root) to make the root filesystem read-only")
    security, args, mounts = chart_redis()
    assert security["readOnlyRootFilesystem"] is True
    assert mounts == {"/data", "/tmp"}
    uid = int(str(security["runAsUser"]))
    data = volume / "data"
    data.mkdir()
    os.chown(data, uid, uid)
    port = free_port()
    rejson, redisearch = redis_modules()
    command = [str(WRAPPER), "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               str(valkey_binary()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
               "--loadmodule", str(rejson), "--loadmodule", str(redisearch), *args]  # fmt: skip
    log = (volume / "server.log").open("wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, password=PASSWORD, protocol=2)
    try:
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, protocol=2).ping()  # --requirepass from the chart's secret
        index = client.ft("idx")
        hashes = IndexDefinition(prefix=["r:"], index_type=IndexType.HASH)  # type: ignore[no-untyped-call]
        index.create_index([TextField("text"), TagField("tenant")], definition=hashes)
        client.hset("r:1", mapping={"text": "Refunds within 30 days", "tenant": "acme"})
        assert index.search("@tenant:{acme} refunds").total == 1
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.bgrewriteaof()
        time.sleep(1)
        written = {p.relative_to(data).parts[0] for p in data.rglob("*")}
        assert "appendonlydir" in written  # the AOF went to the volume, as the user
        assert all(p.stat().st_uid == uid for p in data.rglob("*"))
        # The wrapper, setpriv and the server exec one another: this pid is the server's.
        status = Path(f"/proc/{server.pid}/status").read_text()
        assert re.search(rf"^Uid:\s+{uid}\s", status, flags=re.M), status
        assert "valkey-server" in Path(f"/proc/{server.pid}/cmdline").read_text()
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert server.returncode is not None
