"""Tracing across the pipeline (OpenTelemetry): one chat request is one trace, from the gateway
through retrieval (search, scope) and generation (queue wait, time to first token) to its reply.

W3C trace context travels in each Kafka message's headers (``traceparent``). Retrieval and
generation consume in batches; each request in a batch continues its own trace (a span per
request, not per batch), and what they publish for it carries that span's context on. The
exporter (OTLP over HTTP, to a collector or Jaeger) is off unless ``ALIGNSTREAM_OTLP_ENDPOINT``
is set; off, every span is a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.settings import ObservabilitySettings

_PROPAGATOR = TraceContextTextMapPropagator()


class Tracing:
    """One service's tracer, and the trace context in and out of Kafka headers."""

    def __init__(self, service: str, settings: ObservabilitySettings) -> None:
        self.provider: TracerProvider | None = None
        if settings.otlp_endpoint:
            # Imported only when on: the exporter pulls in protobuf and requests.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
            self.provider = TracerProvider(
                resource=Resource.create({"service.name": f"alignstream-{service}"}),
                sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
            )
            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint)))
        source = self.provider or trace.NoOpTracerProvider()
        self.tracer = source.get_tracer("alignstream")

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def continued(self, headers: Mapping[str, str]) -> Context:
        """The trace a consumed message belongs to (an empty context: a new trace)."""
        if not self.enabled:
            return Context()
        return _PROPAGATOR.extract(dict(headers))

    def headers(self, span: Span | None = None) -> dict[str, str]:
        """The headers that carry ``span`` (default: the current span) into a message."""
        if not self.enabled:
            return {}
        carrier: dict[str, str] = {}
        context = trace.set_span_in_context(span) if span is not None else None
        _PROPAGATOR.inject(carrier, context=context)
        return carrier

    async def close(self) -> None:
        """Export what is buffered (in a thread: the exporter's HTTP calls block)."""
        if self.provider is not None:
            await asyncio.to_thread(self.provider.shutdown)
