"""The address in front of several Tansu brokers: a TCP forwarder on loopback.

Tansu brokers are stateless over a shared store: each reports itself as the cluster's only
broker (node 111) at the address it advertises, whichever broker a client asks. Several of them
serve one cluster only behind one address that reaches a live broker, as a Kubernetes Service or
a load balancer does. This is that address for the dev stack: every new client connection goes
to the next broker that accepts it, so a client whose broker died reconnects to the same address
and lands on a live one. (Run as ``python -m shared.devstack.front PORT BROKER_PORT...``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import sys
from pathlib import Path

from shared.devstack.process import ManagedServer
from shared.kafka import ensure_topics
from shared.settings import KafkaSettings

CHUNK = 65_536


class BrokerFront:
    def __init__(self, port: int, brokers: list[int]) -> None:
        self.port = port
        self.brokers = brokers
        self._next = itertools.cycle(range(len(brokers)))

    async def serve(self) -> None:
        server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._open_live()
        if upstream is None:  # no broker accepts: the client sees a closed connection, retries
            writer.close()
            return
        broker_reader, broker_writer = upstream
        await asyncio.gather(_pipe(reader, broker_writer), _pipe(broker_reader, writer))

    async def _open_live(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in self.brokers:
            port = self.brokers[next(self._next)]
            with contextlib.suppress(OSError):
                return await asyncio.open_connection("127.0.0.1", port)
        return None


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until either side closes, then close the sink (the other direction ends too)."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        sink.close()


class BrokerFrontServer(ManagedServer):
    """The front as a managed process of the stack."""

    name = "kafka-front"

    def __init__(self, state_dir: Path, port: int, brokers: list[int]) -> None:
        super().__init__(state_dir, port)
        self.brokers = brokers

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spawn(self) -> None:
        ports = [str(p) for p in self.brokers]
        self.launch([sys.executable, "-m", "shared.devstack.front", str(self.port), *ports])

    def healthy(self) -> bool:
        return kafka_answers(self.port)


def kafka_answers(port: int) -> bool:
    """Whether a Kafka-protocol broker answers on ``port`` (a metadata round trip)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            pass
    except OSError:
        return False
    try:
        asyncio.run(ensure_topics(KafkaSettings(bootstrap=f"127.0.0.1:{port}"), [], timeout_s=2.0))
    except Exception:
        return False
    return True


def main(argv: list[str]) -> None:
    port, *brokers = (int(a) for a in argv)
    asyncio.run(BrokerFront(port, brokers).serve())


if __name__ == "__main__":
    main(sys.argv[1:])
