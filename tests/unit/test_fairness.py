"""FairSlots: per-tenant caps, max-min fair hand-over of freed slots, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from shared.fairness import FairSlots, default_share


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_default_share_leaves_a_quarter_for_the_others() -> None:
    assert default_share(8) == 6
    assert default_share(1) == 1
    assert default_share(256) == 192


async def test_a_tenant_never_holds_more_than_its_cap_even_with_free_slots() -> None:
    slots = FairSlots(4, per_tenant=2)
    await slots.acquire("noisy")
    await slots.acquire("noisy")
    third = asyncio.create_task(slots.acquire("noisy"))
    await _settle()
    assert not third.done()
    assert slots.held("noisy") == 2
    assert slots.in_use == 2
    # The quiet tenant is served at once from the slots the cap kept free.
    await asyncio.wait_for(slots.acquire("quiet"), 0.1)
    assert slots.held("quiet") == 1
    slots.release("noisy")
    await _settle()
    assert third.done()
    assert slots.held("noisy") == 2


async def test_a_freed_slot_goes_to_the_waiting_tenant_holding_the_fewest() -> None:
    slots = FairSlots(3)
    for _ in range(3):
        await slots.acquire("noisy")
    noisy_more = [asyncio.create_task(slots.acquire("noisy")) for _ in range(5)]
    await _settle()
    quiet = asyncio.create_task(slots.acquire("quiet"))  # arrives after noisy's queue
    await _settle()
    slots.release("noisy")
    await _settle()
    assert quiet.done(), "the quiet tenant holds none: the freed slot is its"
    assert not any(t.done() for t in noisy_more)
    slots.release("noisy")
    await _settle()
    assert sum(t.done() for t in noisy_more) == 1
    for task in noisy_more:
        task.cancel()
    await asyncio.gather(*noisy_more, return_exceptions=True)


async def test_fifo_within_a_tenant() -> None:
    slots = FairSlots(1)
    await slots.acquire("a")
    order: list[int] = []

    async def take(i: int) -> None:
        await slots.acquire("a")
        order.append(i)
        slots.release("a")

    tasks = [asyncio.create_task(take(i)) for i in range(5)]
    await _settle()
    slots.release("a")
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert slots.in_use == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_keeps_no_slot() -> None:
    slots = FairSlots(1)
    await slots.acquire("a")
    waiter = asyncio.create_task(slots.acquire("b"))
    await _settle()
    assert slots.waiting("b") == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting() == 0
    slots.release("a")
    assert slots.in_use == 0


async def test_a_slot_granted_as_the_waiter_is_cancelled_is_handed_on() -> None:
    slots = FairSlots(1)
    await slots.acquire("a")
    first = asyncio.create_task(slots.acquire("b"))
    second = asyncio.create_task(slots.acquire("c"))
    await _settle()
    slots.release("a")  # grants b's future; b has not run yet
    first.cancel()  # ... and b is cancelled before it does
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 0.1)
    assert slots.held("c") == 1
    assert slots.held("b") == 0
    assert slots.in_use == 1


async def test_release_without_a_slot_is_an_error() -> None:
    slots = FairSlots(2)
    with pytest.raises(RuntimeError):
        slots.release("nobody")


async def test_slot_context_releases_on_error() -> None:
    slots = FairSlots(1)

    async def fail_in_slot() -> None:
        async with slots.slot("a"):
            assert slots.in_use == 1
            raise LookupError("work failed")

    with pytest.raises(LookupError, match="work failed"):
        await fail_in_slot()
    assert slots.in_use == 0


async def test_a_tenant_alone_uses_every_slot_and_leaves_a_share_once_another_is_active() -> None:
    slots = FairSlots(4, shared_cap=3, active_s=0.2)
    for _ in range(4):
        await asyncio.wait_for(slots.acquire("noisy"), 0.1)  # alone: all four
    for _ in range(4):
        slots.release("noisy")
    await asyncio.wait_for(slots.acquire("quiet"), 0.1)  # quiet is active now
    slots.release("quiet")
    for _ in range(3):
        await asyncio.wait_for(slots.acquire("noisy"), 0.1)
    fourth = asyncio.create_task(slots.acquire("noisy"))
    await _settle()
    assert not fourth.done(), "a slot stays free for the other active tenant"
    await asyncio.wait_for(slots.acquire("quiet"), 0.1)
    slots.release("quiet")
    await asyncio.sleep(0.25)  # quiet has gone quiet: noisy may take the last slot again
    slots.release("noisy")
    await _settle()
    assert fourth.done()
    assert slots.held("noisy") == 3
    await asyncio.wait_for(slots.acquire("noisy"), 0.1)
    assert slots.held("noisy") == 4
