"""A revoked partition's requests are finished and committed, or aborted before they answer —
never both (``services/generation/revocation.py``), in whatever phase the revocation finds them."""

from __future__ import annotations

import asyncio

from services.generation.revocation import PartitionWork


class Requests:
    """Requests shaped like generation's: wait for a slot, generate, deliver, commit."""

    def __init__(self, grace_s: float = 0.2, delivery_s: float = 0.0) -> None:
        self.settled: list[set[str]] = []
        self.work: PartitionWork[str] = PartitionWork(grace_s, 5.0, self._settle)
        self.slot = asyncio.Event()
        self.delivery_s = delivery_s
        self.delivered: list[str] = []
        self.committed: list[str] = []

    async def _settle(self, partitions: set[str]) -> None:
        self.settled.append(partitions)

    def start(self, name: str, partition: str, generate_s: float) -> asyncio.Task[None]:
        async def serve() -> None:
            await self.slot.wait()
            if not self.work.may_generate():
                return
            await asyncio.sleep(generate_s)
            if not self.work.may_deliver():
                return
            await asyncio.sleep(self.delivery_s)
            self.delivered.append(name)
            self.committed.append(name)

        task = asyncio.create_task(serve())
        self.work.track(partition, task)
        return task


async def test_quick_requests_finish_slow_ones_are_aborted_and_nothing_is_both() -> None:
    requests = Requests(grace_s=0.2)
    requests.slot.set()
    quick = requests.start("quick", "p0", generate_s=0.05)
    slow = requests.start("slow", "p0", generate_s=5.0)
    other = requests.start("other", "p1", generate_s=0.3)  # not revoked
    await asyncio.sleep(0)
    outcome = await requests.work.revoke({"p0"})
    assert (outcome.finished, outcome.aborted, outcome.unsettled) == (1, 1, 0)
    assert outcome.seconds < 1.0  # bounded by the grace, not by the slow generation
    assert quick.done()
    assert slow.cancelled()
    assert requests.delivered == ["quick"]  # answered here, committed before the settle
    assert requests.settled == [{"p0"}]
    await other  # another partition's request is untouched
    assert requests.delivered == ["quick", "other"]


async def test_a_request_still_waiting_for_a_slot_is_aborted_at_once() -> None:
    requests = Requests(grace_s=10.0)
    queued = requests.start("queued", "p0", generate_s=0.0)
    await asyncio.sleep(0)
    outcome = await requests.work.revoke(["p0"])
    assert outcome.aborted == 1
    assert outcome.seconds < 1.0
    assert queued.cancelled()
    assert requests.delivered == []


async def test_a_revoked_partition_takes_no_new_request_until_it_is_assigned_again() -> None:
    requests = Requests()
    await requests.work.revoke({"p0"})
    assert not requests.work.accepts("p0")
    assert requests.work.accepts("p1")
    requests.work.assigned({"p0"})
    assert requests.work.accepts("p0")


async def test_a_request_that_got_its_slot_after_the_revocation_does_not_generate() -> None:
    requests = Requests(grace_s=1.0)
    generating = requests.start("generating", "p0", generate_s=0.5)
    requests.slot.set()
    await asyncio.sleep(0.01)  # generating now
    revocation = asyncio.create_task(requests.work.revoke({"p0"}))
    await asyncio.sleep(0.01)
    late = requests.start("late", "p0", generate_s=0.0)  # tracked while closing
    await revocation
    await asyncio.gather(generating, late, return_exceptions=True)
    assert requests.delivered == ["generating"]  # finished within the grace


async def test_a_request_delivering_when_the_grace_ends_is_awaited_not_cut() -> None:
    requests = Requests(grace_s=0.05, delivery_s=0.3)
    requests.slot.set()
    delivering = requests.start("delivering", "p0", generate_s=0.03)
    await asyncio.sleep(0)
    outcome = await requests.work.revoke({"p0"})
    assert delivering.done()
    assert not delivering.cancelled()
    assert requests.delivered == ["delivering"]
    assert outcome.finished == 1
    assert outcome.aborted == 0


async def test_an_answer_ready_after_the_grace_is_not_published() -> None:
    requests = Requests(grace_s=0.05)
    requests.slot.set()

    async def shielded_generation() -> None:  # an engine that ignores cancellation a moment
        await requests.slot.wait()
        assert requests.work.may_generate()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(0.1)  # the answer arrives after the grace anyway
        if requests.work.may_deliver():
            requests.delivered.append("late")

    task = asyncio.create_task(shielded_generation())
    requests.work.track("p0", task)
    await asyncio.sleep(0)
    outcome = await requests.work.revoke({"p0"})
    assert requests.delivered == []
    assert outcome.aborted == 1
