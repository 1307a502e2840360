"""A server process the local stack owns: started in its own session with a PID file in the
state folder, health-checked, and stopped only by that PID file."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports_in_a_row(count: int, attempts: int = 50) -> int:
    """The first of ``count`` consecutive loopback ports that are all free now."""
    for _ in range(attempts):
        base = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return base
    raise StackError(f"no {count} free ports in a row found")


def pid_alive(pid: int) -> bool:
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


class ManagedServer:
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

    def launch(self, command: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        """Run ``command`` in its own session, output appended to the log, and record its PID
        (for a server that stays in the foreground; ``env`` is added to this one's)."""
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                list(command),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **env} if env else None,
                start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))

    def status(self) -> ServerStatus:
        pid = self.pid()
        running = pid is not None and pid_alive(pid)
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

    def kill(self) -> None:
        """kill -9 (a crash: fault tests)."""
        pid = self.pid()
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)

    def stop(self, timeout_s: float = 10.0) -> None:
        pid = self.pid()
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
