"""What a pod's probes and its shutdown rely on: the inputs pause when draining starts, a
consume loop that ended or a dead engine fails liveness, and the shutdown keeps to one budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.generation.app import GenerationService
from services.generation.backends.base import GenerationInput, GenerationOutput
from services.generation.settings import GenerationSettings
from shared.consumers import InputConsumers
from shared.service import PHASE_FLOOR_S, Service
from shared.settings import ServiceSettings
from shared.testing.backends import ScriptedBackend


class FakeConsumer:
    def __init__(self, partitions: set[str]) -> None:
        self.partitions = partitions
        self.paused: set[str] = set()

    def assignment(self) -> set[str]:
        return set(self.partitions)

    def pause(self, *partitions: str) -> None:
        self.paused.update(partitions)


class FakeSubscriber:
    def __init__(self, consumer: FakeConsumer | None, tasks: list[asyncio.Task[Any]]) -> None:
        self.consumer = consumer
        self.running = True
        self.tasks = tasks


async def test_draining_pauses_the_inputs_but_not_what_the_drain_waits_on() -> None:
    inputs, replies = FakeConsumer({"chat.grounded-0", "chat.grounded-1"}), FakeConsumer({"r-0"})
    consumers = InputConsumers()
    consumers.add(FakeSubscriber(inputs, []), "chat.grounded", pause_on_drain=True)
    consumers.add(FakeSubscriber(replies, []), "replies", pause_on_drain=False)
    consumers.add(FakeSubscriber(None, []), "not started", pause_on_drain=True)
    assert consumers.pause() == 2
    assert inputs.paused == {"chat.grounded-0", "chat.grounded-1"}
    assert replies.paused == set()


async def test_partitions_a_rebalance_hands_a_draining_consumer_stay_paused() -> None:
    """A rolling update: the new pod joins while the old one drains; the group's rebalance
    gives the old one partitions again, which it must not fetch from."""
    inputs = FakeConsumer({"chat.grounded-0"})
    consumers = InputConsumers()
    listener = consumers.listener()
    consumers.add(FakeSubscriber(inputs, []), "chat.grounded", pause_on_drain=True,
                  listener=listener)  # fmt: skip
    await listener.on_partitions_assigned({"chat.grounded-1"})
    assert inputs.paused == set()  # not draining: a rebalance changes nothing
    consumers.pause()
    await listener.on_partitions_assigned({"chat.grounded-2", "chat.grounded-3"})
    assert inputs.paused == {"chat.grounded-0", "chat.grounded-2", "chat.grounded-3"}


async def test_a_consume_loop_that_ended_is_reported_while_one_that_runs_is_not() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def crash() -> None:
        raise RuntimeError("consume loop crashed")

    alive, dead = asyncio.create_task(forever()), asyncio.create_task(crash())
    await asyncio.sleep(0)
    consumers = InputConsumers()
    consumers.add(FakeSubscriber(None, [alive]), "rules.events", pause_on_drain=True)
    consumers.add(FakeSubscriber(None, [dead]), "chat.requests", pause_on_drain=True)
    stopped = FakeSubscriber(None, [dead])
    stopped.running = False  # stopped on purpose (shutdown): not a failure
    consumers.add(stopped, "exam.jobs", pause_on_drain=True)
    assert consumers.stopped() == ["chat.requests"]
    alive.cancel()


class DyingEngine(ScriptedBackend):
    def __init__(self) -> None:
        self.engine_up = True

    def alive(self) -> bool:
        return self.engine_up

    async def generate(self, request: GenerationInput) -> GenerationOutput:
        return GenerationOutput(text="ok", finish_reason="stop")


async def test_generation_fails_liveness_when_its_engine_died() -> None:
    backend = DyingEngine()
    service = GenerationService(GenerationSettings(), backend=backend)
    assert await service._is_live()
    backend.engine_up = False
    assert not await service._is_live()


class SlowToStop(Service):
    name = "slow-to-stop"

    async def on_draining(self) -> None:
        await asyncio.sleep(60)  # a drain that never finishes in time

    async def on_stop(self) -> None:
        self.closed_at = time.monotonic()


async def test_the_shutdown_keeps_to_one_budget_and_still_closes_after_a_stuck_drain() -> None:
    service = SlowToStop(ServiceSettings(shutdown_timeout_s=1.0))
    started = time.monotonic()
    await service.stop()
    took = time.monotonic() - started
    # The drain used the budget (at least the floor); the broker stop and the close ran after.
    assert PHASE_FLOOR_S <= service.closed_at - started < PHASE_FLOOR_S + 2
    assert took < 1.0 + 4 * PHASE_FLOOR_S


async def test_grading_and_the_gateway_fail_liveness_when_their_own_loop_task_ended() -> None:
    from services.gateway.app import GatewayService
    from services.grading.app import GradingService

    async def ended() -> None:
        pass

    grading = GradingService.from_env()
    assert await grading.is_live()  # not started: nothing to watch
    grading._sweeper = asyncio.create_task(ended())
    await grading._sweeper
    assert not await grading.is_live()
    gateway = GatewayService.from_env()
    assert await gateway.is_live()
    gateway._serving = asyncio.create_task(ended())
    await gateway._serving
    assert not await gateway.is_live()
