"""Spans over OTLP/HTTP, with the ids the events' ``traceparent`` carry.

Set ``CUMULO_OTLP_ENDPOINT`` (the collector's base URL, e.g.
``http://127.0.0.1:4318``; ``/v1/traces`` is added unless given) and install
the ``otel`` extra. The platform then exports:

- ``ingest <type>`` (producer): an event that entered through ``POST /events``
  and started its trace there; its span id is the event's.
- ``deliver <function>`` (consumer), per delivery attempt: a child of the
  delivered event's span, with the function, trigger, attempt and status.
  An event that reached the bus without a trace context gets one when first
  delivered; that delivery's span is then the trace's root.
- ``emit <type>`` (producer), per event a function returned: its span id is
  the reply's, its parent the delivered event's span.

Spans are built from the ids the events already carry (not by a tracer that
picks its own) and handed to the SDK's batch processor and OTLP exporter.
"""

from __future__ import annotations

from typing import Any

from cumulo.events import tracing
from cumulo.events.bus.base import Ack
from cumulo.events.event import Event
from cumulo.events.middleware import Delivery
from cumulo.events.outcome import Success
from cumulo.extras import from_extra

SERVICE_NAME = "cumulo"
SCHEDULE_DELAY_MILLIS = 500


def traces_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def _nanos(seconds: float) -> int:
    return int(seconds * 1e9)


class SpanExporter:
    """Builds spans from event trace contexts and exports them in batches."""

    def __init__(self, endpoint: str, *, project: str = ""):
        with from_extra("otel", needed_by="span export (CUMULO_OTLP_ENDPOINT is set)"):
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import ReadableSpan
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        self._trace = trace
        self._span_type = ReadableSpan
        self._resource = Resource.create({"service.name": SERVICE_NAME, "cumulo.project": project})
        self._scope = InstrumentationScope("cumulo")
        exporter = OTLPSpanExporter(endpoint=traces_url(endpoint))
        self._processor = BatchSpanProcessor(exporter, schedule_delay_millis=SCHEDULE_DELAY_MILLIS)

    def _context(self, span: tracing.SpanContext) -> Any:
        return self._trace.SpanContext(
            int(span.trace_id, 16),
            int(span.span_id, 16),
            is_remote=False,
            trace_flags=self._trace.TraceFlags(int(span.flags, 16)),
        )

    def export(
        self,
        name: str,
        span: tracing.SpanContext,
        parent: tracing.SpanContext | None,
        *,
        start: float,
        end: float,
        kind: str,
        attributes: dict[str, Any],
        error: str | None = None,
    ) -> None:
        """Queue one finished span for export."""
        status = self._trace.Status(
            self._trace.StatusCode.ERROR if error else self._trace.StatusCode.OK, error
        )
        self._processor.on_end(
            self._span_type(
                name,
                context=self._context(span),
                parent=self._context(parent) if parent else None,
                resource=self._resource,
                attributes=attributes,
                kind=getattr(self._trace.SpanKind, kind),
                status=status,
                start_time=_nanos(start),
                end_time=_nanos(max(start, end)),
                instrumentation_scope=self._scope,
            )
        )

    def ingested(self, bus: str, topic: str, started: list[Event], at: float, end: float) -> None:
        """``ingest`` spans for events whose trace started at the gateway."""
        for event in started:
            span = tracing.context_of(event.attributes)
            if span is not None:
                attributes = {**event_attributes(event), "cumulo.bus": bus, "cumulo.topic": topic}
                self.export(
                    f"ingest {event.type}",
                    span,
                    None,
                    start=at,
                    end=end,
                    kind="PRODUCER",
                    attributes=attributes,
                )

    def after_delivery(self, delivery: Delivery) -> None:
        """Delivery middleware: the ``deliver`` span, and ``emit`` spans for the replies."""
        event_span = tracing.context_of(delivery.event.attributes)
        if event_span is None or delivery.settled is None:
            return
        started_here = tracing.context_of(delivery.message.event.attributes) is None
        span, parent = (event_span, None) if started_here else (event_span.child(), event_span)
        self.export(
            f"deliver {delivery.function}",
            span,
            parent,
            start=delivery.started,
            end=delivery.settled,
            kind="CONSUMER",
            attributes=delivery_attributes(delivery),
            error=failure_text(delivery),
        )
        self._emitted(delivery, event_span)

    def _emitted(self, delivery: Delivery, parent: tracing.SpanContext) -> None:
        if not isinstance(delivery.settlement, Ack) or delivery.settled is None:
            return
        at = delivery.settled
        for topic, reply in delivery.settlement.emit:
            span = tracing.context_of(reply.attributes)
            if span is None or span.trace_id != parent.trace_id:
                continue
            attributes = {**event_attributes(reply), "cumulo.topic": topic}
            attributes["cumulo.function"] = delivery.function
            self.export(
                f"emit {reply.type}", span, parent, start=at, end=at, kind="PRODUCER",
                attributes=attributes,
            )  # fmt: skip

    def shutdown(self) -> None:
        """Export what is queued, then stop (blocks; call it off the event loop)."""
        self._processor.shutdown()


def event_attributes(event: Event) -> dict[str, Any]:
    return {
        "cloudevents.event_id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_source": event.source,
    }


def delivery_attributes(delivery: Delivery) -> dict[str, Any]:
    return {
        **event_attributes(delivery.event),
        "cumulo.function": delivery.function,
        "cumulo.trigger": delivery.trigger,
        "cumulo.attempt": delivery.message.attempt,
        "cumulo.status": delivery.status,
        "cumulo.offset": delivery.message.offset,
    }


def failure_text(delivery: Delivery) -> str | None:
    outcome = delivery.outcome
    if outcome is None or isinstance(outcome, Success):
        return None
    return f"{outcome.error_type}: {outcome.message}"
