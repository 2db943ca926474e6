"""Prometheus metrics of ``cumulo up``, served at ``GET /metrics``.

Everything lives in the platform's own :class:`~prometheus_client.CollectorRegistry`
(never the process-wide default). What the platform already counts (trigger
and pool stats, job runs, queue depths) is read at scrape time by
:class:`StatsCollector`; only what nothing else records is counted here:
events published (through :class:`~cumulo.runtimes.local.observed_bus.ObservedBus`)
and the two latency histograms (as delivery middleware).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from cumulo.events.bus.base import Bus
from cumulo.events.middleware import Delivery
from cumulo.runtimes.local.hosts import FunctionHost
from cumulo.runtimes.local.views import RunCounts, TriggerView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
TRIGGER_GROUP = "trigger/"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 300, 3600)
FINAL = frozenset({"delivered", "dead-lettered"})

TRIGGER_COUNTERS = (
    ("cumulo_events_delivered", "Events a function handled successfully.", "delivered"),
    ("cumulo_events_retried", "Failed deliveries scheduled to be tried again.", "retried"),
    ("cumulo_events_dead_lettered", "Events sent to the dead-letter topic.", "dead_lettered"),
)


class PlatformMetrics:
    """The platform's registry, and the delivery middleware that feeds its histograms."""

    def __init__(self, stats: StatsCollector):
        self.registry = CollectorRegistry(auto_describe=True)
        self.published = Counter(
            "cumulo_events_published",
            "Events published to a bus (ingested, emitted by functions, dead-lettered).",
            ["bus", "topic"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cumulo_delivery_latency_seconds",
            "From publish to final settlement (delivered or dead-lettered).",
            ["trigger", "function"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.duration = Histogram(
            "cumulo_invocation_duration_seconds",
            "How long a function took on one delivered event.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.stats = stats
        self.registry.register(self.stats)
        self._scraping = asyncio.Lock()

    def count_published(self, bus: str, topic: str, count: int) -> None:
        if count:
            self.published.labels(bus, topic).inc(count)

    def after_delivery(self, delivery: Delivery) -> None:
        """Delivery middleware: observe the invocation time and the end-to-end latency."""
        if delivery.duration is not None:
            self.duration.labels(delivery.function).observe(delivery.duration)
        if delivery.settled is not None and delivery.status in FINAL:
            waited = max(0.0, delivery.settled - delivery.message.published_at)
            self.latency.labels(delivery.trigger, delivery.function).observe(waited)

    async def exposition(self) -> bytes:
        """The text format, with the bus and run-store figures read now."""
        async with self._scraping:
            await self.stats.refresh()
            return generate_latest(self.registry)


class StatsCollector:
    """Reads the platform's own stats objects when Prometheus scrapes.

    ``buses``, ``hosts`` and ``triggers`` are the platform's live collections,
    filled as it starts; ``run_counts`` reads the run store (blocking I/O)."""

    def __init__(
        self,
        buses: Mapping[str, Bus],
        hosts: Mapping[str, FunctionHost],
        triggers: Sequence[TriggerView],
        run_counts: RunCounts,
    ):
        self.buses = buses
        self.hosts = hosts
        self.triggers = triggers
        self.run_counts = run_counts
        self.depths: dict[str, int] = {}
        self.runs: dict[tuple[str, str], int] = {}

    async def refresh(self) -> None:
        """What needs I/O: queue depths from the buses, run counts from the run store."""
        depths: dict[str, int] = {}
        for bus in list(self.buses.values()):
            for group in await bus.groups():
                if group.name.startswith(TRIGGER_GROUP):
                    name = group.name.removeprefix(TRIGGER_GROUP)
                    depths[name] = depths.get(name, 0) + group.backlog + group.pending
        self.depths = depths
        self.runs = await asyncio.to_thread(self.run_counts)

    def describe(self) -> list[Metric]:
        return []  # the families vary with the project; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._trigger_counters()
        yield self._queue_depth()
        yield from self._pool_metrics()
        yield self._job_runs()

    def _trigger_counters(self) -> Iterator[Metric]:
        for name, text, stat in TRIGGER_COUNTERS:
            family = CounterMetricFamily(name, text, labels=["trigger", "function"])
            for d in self.triggers:
                labels = [d.trigger.name, d.trigger.spec.function]
                family.add_metric(labels, getattr(d.stats, stat))
            yield family

    def _queue_depth(self) -> Metric:
        family = GaugeMetricFamily(
            "cumulo_queue_depth",
            "Events waiting for a trigger: not yet fetched, leased or waiting to retry.",
            labels=["trigger"],
        )
        for d in self.triggers:
            family.add_metric([d.trigger.name], self.depths.get(d.trigger.name, 0))
        return family

    def _pool_metrics(self) -> Iterator[Metric]:
        replicas = GaugeMetricFamily(
            "cumulo_replicas",
            "Worker processes of a function (service replicas, or job runs in flight).",
            labels=["function"],
        )
        cold = CounterMetricFamily(
            "cumulo_cold_starts", "Service replicas started.", labels=["function"]
        )
        for name, host in self.hosts.items():
            replicas.add_metric([name], host.workers())
            if (started := host.cold_starts()) is not None:
                cold.add_metric([name], started)
        yield replicas
        yield cold

    def _job_runs(self) -> Metric:
        family = CounterMetricFamily(
            "cumulo_job_runs", "Finished job runs, by final status.", labels=["function", "status"]
        )
        for (function, status), count in sorted(self.runs.items()):
            family.add_metric([function, status], count)
        return family
