"""Per-rule locks of ingest's two lanes."""

from __future__ import annotations

import asyncio

from services.ingest.locks import RuleLocks


async def test_a_batch_waits_only_for_batches_holding_its_rules() -> None:
    locks, order = RuleLocks(), []

    async def batch(name: str, rules: list[str], hold_s: float) -> None:
        async with locks.holding(("acme", r) for r in rules):
            order.append(f"{name} in")
            await asyncio.sleep(hold_s)
            order.append(f"{name} out")

    bulk = asyncio.create_task(batch("bulk", ["a", "b", "c"], 0.05))
    await asyncio.sleep(0)
    other = asyncio.create_task(batch("other", ["x"], 0.0))  # no shared rule: goes at once
    same = asyncio.create_task(batch("same", ["c", "a"], 0.0))  # waits for the bulk batch
    await asyncio.gather(bulk, other, same)
    assert order.index("other out") < order.index("bulk out") < order.index("same in")
    assert locks.held() == 0  # nothing kept once idle


async def test_overlapping_batches_in_opposite_orders_do_not_deadlock() -> None:
    locks = RuleLocks()

    async def batch(rules: list[str]) -> None:
        async with locks.holding(("acme", r) for r in rules):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(asyncio.gather(batch(["a", "b"]), batch(["b", "a"])), timeout=2)
    assert locks.held() == 0


async def test_waiting_for_a_rule_holds_nothing_and_ends_when_its_holder_is_done() -> None:
    """A batch that leaves a rule alone (Redis has its version) waits for the batch writing it
    to confirm, but a free rule costs no wait, and the waiter blocks no one."""
    locks, order = RuleLocks(), []

    async def writer() -> None:
        async with locks.holding([("acme", "live")]):
            order.append("writer in")
            await asyncio.sleep(0.05)
            order.append("writer out")

    writing = asyncio.create_task(writer())
    await asyncio.sleep(0)
    await asyncio.wait_for(locks.wait_free([("acme", "other")]), timeout=0.01)  # free: at once
    order.append("free rule passed")
    await locks.wait_free([("acme", "live")])
    order.append("waiter done")
    await writing
    assert order == ["writer in", "free rule passed", "writer out", "waiter done"]
    assert locks.held() == 0
