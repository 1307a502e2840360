"""The broker's own latency, watched from outside the pipeline: a process of its own publishes a
timestamp every 20 ms to a probe topic and reads it back (its own consumer group), recording
every hop slower than ``SLOW_MS``. A stall it sees is the broker's (or the machine's), not a
service's: the fairness bench uses it to say which of the quiet tenant's slow answers waited
on the broker."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

SLOW_MS = 300.0
EVERY_S = 0.02

Stall = tuple[float, float]
"""(start, end) in wall-clock seconds."""


async def _probe(bootstrap: str, stop: Connection, out: Connection) -> None:
    topic = f"bench-probe-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=10,
                                group_id=topic, auto_offset_reset="earliest")  # fmt: skip
    await producer.start()
    await producer.send_and_wait(topic, b"0")  # creates the topic before the group reads it
    await consumer.start()
    stalls: list[Stall] = []

    async def read() -> None:
        async for message in consumer:
            sent = float(message.value or b"0")
            now = time.time()
            if sent and (now - sent) * 1000 > SLOW_MS:
                stalls.append((sent, now))

    reading = asyncio.create_task(read())
    out.send("ready")
    while not stop.poll():
        started = time.time()
        await producer.send_and_wait(topic, repr(started).encode())
        if (time.time() - started) * 1000 > SLOW_MS:
            stalls.append((started, time.time()))
        await asyncio.sleep(EVERY_S)
    await asyncio.sleep(1.0)  # the last probes arrive
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading
    await consumer.stop()
    await producer.stop()
    out.send(stalls)


def _run(bootstrap: str, stop: Connection, out: Connection) -> None:
    asyncio.run(_probe(bootstrap, stop, out))


@contextlib.contextmanager
def broker_stalls(bootstrap: str) -> Iterator[list[Stall]]:
    """Probe the broker while the block runs; the list holds the stalls once it ended."""
    stop_read, stop_write = multiprocessing.Pipe(duplex=False)
    out_read, out_write = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_run, args=(bootstrap, stop_read, out_write),
                                      daemon=True)  # fmt: skip
    process.start()
    if not out_read.poll(60):
        process.kill()
        raise RuntimeError("the broker probe did not start")
    out_read.recv()
    stalls: list[Stall] = []
    try:
        yield stalls
    finally:
        stop_write.send(True)
        if out_read.poll(30):
            stalls.extend(out_read.recv())
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def overlaps(window: Stall, stalls: list[Stall]) -> bool:
    return any(start < window[1] and window[0] < end for start, end in stalls)
