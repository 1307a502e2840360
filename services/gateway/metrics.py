"""The gateway's own metric families."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS_S

IN_FLIGHT = Gauge("alignstream_gateway_in_flight", "Chat requests open now (the HPA's signal).")
REQUESTS = Counter(
    "alignstream_gateway_http_requests_total", "HTTP requests by route and status.",
    ["route", "status"],
)  # fmt: skip
SECONDS = Histogram(
    "alignstream_gateway_http_request_seconds", "HTTP request time by route (streams: to the end).",
    ["route"], buckets=LATENCY_BUCKETS_S,
)  # fmt: skip
OUTCOMES = Counter(
    "alignstream_gateway_answers_total",
    "Chat requests by outcome: ok, pipeline_error, timeout, disconnected (not delivered).",
    ["endpoint", "outcome"],
)
UNMATCHED = Counter(
    "alignstream_gateway_unmatched_replies_total",
    "Replies on this instance's topic that no open request waited for (client left, timed out).",
)
REFUSED = Counter(
    "alignstream_gateway_refused_total",
    "Chat requests refused (429) by the bound they met: instance, tenant or key.",
    ["bound"],
)
CANCELS = Counter(
    "alignstream_gateway_cancels_total",
    "Requests the gateway cancelled in the pipeline (client_left, timed_out), and cancels "
    "that could not be published (failed).",
    ["reason"],
)
RULE_CHANGES = Counter(
    "alignstream_gateway_rule_changes_total", "Rule events published by the rules API.", ["op"]
)

REPLY_TOPICS_SWEPT = Counter(
    "alignstream_gateway_reply_topics_swept_total",
    "Reply topics of gateway instances that stopped without deleting them, deleted by a sweep.",
)
FAMILIES = (IN_FLIGHT, REQUESTS, SECONDS, OUTCOMES, UNMATCHED, REFUSED, CANCELS, RULE_CHANGES,
            REPLY_TOPICS_SWEPT)  # fmt: skip
