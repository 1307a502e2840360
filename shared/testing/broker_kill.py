"""Produce and consume through a Kafka cluster while brokers are killed: what was acknowledged
must all be read back (``broker_kill_lost``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


@dataclass(frozen=True, slots=True)
class KillOutcome:
    sent: int
    acknowledged: int
    lost: int
    """Acknowledged (acks=all) but never read back by the consumer group."""
    longest_stall_s: float
    """The longest wait for one acknowledgement (the clients' failover)."""


async def produce_through_kills(
    bootstrap: str,
    kills: dict[int, Callable[[], None]],
    *,
    messages: int = 2000,
    topic: str = "broker-kill",
    read_timeout_s: float = 60.0,
) -> KillOutcome:
    """Send ``messages`` one by one (acks=all) while a consumer group reads them; before message
    ``i`` run ``kills[i]``. Failed sends are not retried here (the client's own retries only)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=5000,
                                retry_backoff_ms=100)  # fmt: skip
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"{topic}.readers",
                                auto_offset_reset="earliest", session_timeout_ms=3000,
                                heartbeat_interval_ms=300)  # fmt: skip
    await producer.start()
    await consumer.start()
    seen: set[int] = set()

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.update(int(r.value) for r in records if r.value is not None)

    reader = asyncio.create_task(read())
    acknowledged: set[int] = set()
    stall = 0.0
    try:
        for i in range(messages):
            if i in kills:
                kills[i]()
            started = time.monotonic()
            with contextlib.suppress(Exception):  # a failed send is simply not acknowledged
                await producer.send_and_wait(topic, str(i).encode(), key=str(i).encode())
                acknowledged.add(i)
            stall = max(stall, time.monotonic() - started)
        deadline = time.monotonic() + read_timeout_s
        while not acknowledged <= seen and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)  # the reader adds to ``seen`` as it goes
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    return KillOutcome(messages, len(acknowledged), len(acknowledged - seen), stall)
