"""Prometheus metrics common to every service.

Metric objects are module-level, as prometheus_client expects; every series carries a ``service``
label so one process can host several services (tests, the demo).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

MESSAGES_CONSUMED = Counter(
    "alignstream_messages_consumed_total",
    "Messages taken from a topic (valid or not).",
    ["service", "topic"],
)
MESSAGES_DEAD_LETTERED = Counter(
    "alignstream_messages_dead_lettered_total",
    "Messages sent to a dead-letter topic, by reason.",
    ["service", "topic", "reason"],
)
DEAD_LETTER_FAILURES = Counter(
    "alignstream_dead_letter_failures_total",
    "Dead letters that could not be published (the message is redelivered after a back-off).",
    ["service", "topic"],
)
UNPUBLISHABLE = Counter(
    "alignstream_unpublishable_total",
    "Derived messages that could not be published (too large, forbidden or missing topic) and "
    "became an error response or a dead letter instead, by kind.",
    ["service", "kind"],
)
PROCESSING_RETRIES = Counter(
    "alignstream_processing_retries_total",
    "Messages whose processing failed transiently and will be redelivered.",
    ["service", "topic"],
)
HANDLER_SECONDS = Histogram(
    "alignstream_handler_seconds",
    "Time spent handling one message or batch.",
    ["service", "topic"],
    buckets=LATENCY_BUCKETS_S,
)
EVENT_LOOP_LAG = Histogram(
    "alignstream_event_loop_lag_seconds",
    "How much later than asked the event loop woke a sleeping task (sampled every 50 ms).",
    ["service"],
    buckets=LATENCY_BUCKETS_S,
)
SERVICE_UP = Gauge(
    "alignstream_service_ready",
    "1 when the service is started and ready.",
    ["service"],
)


SHARED_FAMILIES: tuple[Collector, ...] = (
    MESSAGES_CONSUMED,
    MESSAGES_DEAD_LETTERED,
    DEAD_LETTER_FAILURES,
    UNPUBLISHABLE,
    PROCESSING_RETRIES,
    HANDLER_SECONDS,
    EVENT_LOOP_LAG,
    SERVICE_UP,
)
"""Families every service exports, told apart by their ``service`` label."""


def service_registry(own: Iterable[Collector]) -> CollectorRegistry:
    """What one service's ``/metrics`` shows: the shared families, its own, and the process's.

    The process may have imported other services' modules (the CLI's entry point, the demo,
    tests), whose families sit in the default registry; they are not this service's."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (*SHARED_FAMILIES, *own, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry
