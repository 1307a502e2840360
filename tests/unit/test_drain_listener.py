"""A consumer that commits after its handler (FastStream's default) keeps what it finished when
the group takes its partitions: the revocation waits for the batch in hand and commits the
handled offsets, never a fetched position past unhandled records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from shared.consumers import InputConsumers
from shared.dlq import Record

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


@dataclass
class FakeConsumer:
    commits: list[dict[Any, int]] = field(default_factory=list)

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[Any]:
        return {P0, P1}

    def pause(self, *partitions: Any) -> None:
        pass


@dataclass
class FakeSubscriber:
    consumer: FakeConsumer


def records(partition: int, *offsets: int) -> list[Record]:
    return [Record("t", partition, offset, None, b"", {}) for offset in offsets]


def listener_with(consumer: FakeConsumer, settle_s: float = 5.0) -> Any:
    inputs = InputConsumers()
    listener = inputs.listener()
    listener.settle_s = settle_s
    inputs.add(FakeSubscriber(consumer), "t", pause_on_drain=True, listener=listener)
    return listener


async def test_the_revocation_waits_for_the_batch_in_hand_and_commits_it() -> None:
    consumer = FakeConsumer()
    listener = listener_with(consumer)
    release = asyncio.Event()

    async def handler() -> None:
        with listener.handling(records(0, 7, 8)):
            await release.wait()

    running = asyncio.create_task(handler())
    await asyncio.sleep(0)
    revoking = asyncio.create_task(listener.on_partitions_revoked({P0, P1}))
    await asyncio.sleep(0.05)
    assert not revoking.done()  # the group waits for the batch in hand
    release.set()
    await asyncio.gather(running, revoking)
    assert consumer.commits == [{P0: 9}]  # what the handler finished, nothing of P1


async def test_a_failed_batch_is_not_committed_and_a_stuck_one_is_left_after_the_bound() -> None:
    consumer = FakeConsumer()
    listener = listener_with(consumer, settle_s=0.05)
    try:
        with listener.handling(records(1, 3)):
            raise RuntimeError("Redis is down")
    except RuntimeError:
        pass

    async def stuck() -> None:
        with listener.handling(records(0, 4)):
            await asyncio.sleep(10)

    task = asyncio.create_task(stuck())
    await asyncio.sleep(0)
    await listener.on_partitions_revoked({P0, P1})
    assert consumer.commits == []  # the next owner redoes both batches
    task.cancel()


async def test_a_subscription_hook_replaces_the_commit() -> None:
    consumer = FakeConsumer()
    seen: list[set[Any]] = []

    async def hook(partitions: set[Any]) -> None:
        seen.append(partitions)

    inputs = InputConsumers()
    listener = inputs.listener(on_revoked=hook)
    inputs.add(FakeSubscriber(consumer), "t", pause_on_drain=True, listener=listener)
    with listener.handling(records(0, 1)):
        pass
    await listener.on_partitions_revoked({P0})
    assert seen == [{P0}]
    assert consumer.commits == []  # generation commits behind its own work
