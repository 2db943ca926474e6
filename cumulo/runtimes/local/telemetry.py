"""Metrics and tracing for one ``cumulo up``, wired in one place.

The platform asks this object for three things: the buses to use (wrapped to
count what is published), the dispatchers' delivery middleware, in order
(metrics first, then span export), and the gateway's ingest hooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from cumulo.events import tracing
from cumulo.events.bus.base import Bus
from cumulo.events.event import Event
from cumulo.events.middleware import DeliveryMiddleware
from cumulo.runtimes.local.metrics import PlatformMetrics
from cumulo.runtimes.local.observed_bus import ObservedBus
from cumulo.runtimes.local.otel import SpanExporter


class Telemetry:
    def __init__(self, metrics: PlatformMetrics, *, otlp_endpoint: str | None, project: str):
        self.metrics = metrics
        self.spans = SpanExporter(otlp_endpoint, project=project) if otlp_endpoint else None

    @property
    def middleware(self) -> list[DeliveryMiddleware]:
        """Delivery middleware, in the order it runs."""
        ordered: list[DeliveryMiddleware] = [self.metrics]
        if self.spans is not None:
            ordered.append(self.spans)
        return ordered

    def observe(self, name: str, bus: Bus) -> Bus:
        return ObservedBus(name, bus, self.metrics.count_published)

    async def ingest(self, bus: Bus, name: str, topic: str, events: Sequence[Event]) -> list[int]:
        """Publish what ``POST /events`` accepted; an event without a trace starts one."""
        began = time.time()
        traced = [tracing.ensure_trace(event) for event in events]
        offsets = await bus.publish(topic, traced)
        if self.spans is not None:
            started = [t for e, t in zip(events, traced, strict=True) if t is not e]
            self.spans.ingested(name, topic, started, began, time.time())
        return offsets

    async def close(self) -> None:
        if self.spans is not None:
            await asyncio.to_thread(self.spans.shutdown)
