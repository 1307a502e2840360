"""Cancellations: a client's cancel reaches its request's work, queued or running, or waits
(bounded, for a while) for a request that has not arrived yet."""

from __future__ import annotations

import asyncio

import pytest

from services.generation.cancels import Cancellations
from shared import events


def request(request_id: str, tenant: str = "acme") -> events.ChatRequest:
    question = events.ChatMessage(role=events.Role.USER, content="q")
    return events.ChatRequest(request_id=request_id, tenant=tenant, messages=(question,))


def cancel(request_id: str, tenant: str = "acme") -> events.ChatCancel:
    return events.ChatCancel(request_id=request_id, tenant=tenant)


async def test_a_cancel_cancels_the_running_work_of_its_request_only() -> None:
    cancellations = Cancellations()
    seen: dict[tuple[str, str], bool] = {}

    async def work(req: events.ChatRequest) -> None:
        with cancellations.tracking(req):
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                seen[req.tenant, req.request_id] = cancellations.requested(req)
                raise

    mine, other, same_id_other_tenant = request("r1"), request("r2"), request("r1", "beta")
    tasks = [asyncio.create_task(work(r)) for r in (mine, other, same_id_other_tenant)]
    await asyncio.sleep(0)
    cancellations.cancel(cancel("r1"))
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert seen == {("acme", "r1"): True}
    assert not tasks[1].done()
    assert not tasks[2].done()
    for task in tasks[1:]:
        task.cancel()
    await asyncio.gather(*tasks[1:], return_exceptions=True)
    # Cancelled by someone else (a shutdown): not the client's cancel.
    assert seen == {("acme", "r1"): True, ("acme", "r2"): False, ("beta", "r1"): False}
    assert not cancellations.requested(mine)


def test_a_cancel_before_its_request_is_remembered_once() -> None:
    cancellations = Cancellations()
    cancellations.cancel(cancel("early"))
    assert not cancellations.was_cancelled(request("early", "beta"))
    assert cancellations.was_cancelled(request("early"))
    assert not cancellations.was_cancelled(request("early"))  # forgotten once used


def test_early_cancels_are_bounded_and_expire() -> None:
    cancellations = Cancellations(remember=3, remember_s=600)
    for i in range(5):
        cancellations.cancel(cancel(f"r{i}"))
    assert [cancellations.was_cancelled(request(f"r{i}")) for i in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip
    expired = Cancellations(remember_s=0.0)
    expired.cancel(cancel("old"))
    assert not expired.was_cancelled(request("old"))
