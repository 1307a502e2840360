"""The event-loop lag metric records a loop held by blocking work, and only then."""

from __future__ import annotations

import asyncio
import time

from shared.loop_lag import LoopLag
from shared.metrics import EVENT_LOOP_LAG


def lagged_over(service: str, seconds: float) -> float:
    """Samples of ``service`` later than ``seconds`` (from the histogram's buckets)."""
    total = within = 0.0
    for metric in EVENT_LOOP_LAG.collect():
        for sample in metric.samples:
            if sample.labels.get("service") != service:
                continue
            if sample.name.endswith("_count"):
                total = sample.value
            if sample.name.endswith("_bucket") and sample.labels["le"] == str(seconds):
                within = sample.value
    return total - within


async def test_a_blocked_loop_is_recorded_a_free_one_is_not() -> None:
    lag = LoopLag("lag-test", every_s=0.01)
    lag.start()
    await asyncio.sleep(0.2)
    assert lagged_over("lag-test", 0.1) == 0
    time.sleep(0.3)  # blocking work on the loop  # noqa: ASYNC251
    await asyncio.sleep(0.05)
    assert lagged_over("lag-test", 0.1) == 1
    await lag.stop()
    await lag.stop()  # twice is harmless
