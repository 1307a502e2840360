"""Three Tansu brokers sharing one durable store behind one address (``stack up --brokers 3``):
kill -9 of brokers under load, the clients carry on through the others and lose nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.devstack.process import free_port, free_ports_in_a_row
from shared.devstack.servers import LocalStack
from shared.testing.broker_kill import produce_through_kills


@pytest.mark.timeout(300)
async def test_killing_brokers_under_load_loses_no_acknowledged_record(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, kafka_port=free_ports_in_a_row(4), redis_port=free_port(),
                       s3_port=free_ports_in_a_row(8), brokers=3)  # fmt: skip
    try:
        await asyncio.to_thread(stack.up)  # its health checks run an event loop of their own
        assert len({b.pid() for b in stack.brokers}) == 3

        first, second = stack.brokers[0].kill, stack.brokers[1].kill
        outcome = await produce_through_kills(stack.kafka.address, {300: first, 700: second},
                                              messages=1000)  # fmt: skip
        assert outcome.acknowledged == 1000  # the clients' retries carried every send
        assert outcome.lost == 0
        assert not stack.brokers[0].status().running
    finally:
        await asyncio.to_thread(stack.down)
