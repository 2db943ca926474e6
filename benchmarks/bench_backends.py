"""Every bus backend side by side, on real servers started here: ``python benchmarks/bench_backends.py``.

Per backend (SQLite, Redis Streams, NATS JetStream, Kafka), with the same
client code (Cumulo's bus contract):

- publish: 8 publishers, batches of 100 events, durable when ``publish`` returns;
- end to end: 5,000 events published in batches while one consumer group leases
  and acks them, from the first publish to the last ack;
- latency at 500 events/s: one event per publish, paced, from the start of the
  publish to the consumer holding it (p50 and p99).

And Dapr's cost: publishing one event through a ``daprd`` sidecar (pubsub.redis)
against Cumulo publishing to the same Redis directly, p50 and p99 of the call.
The servers come from ``scripts/infra/install`` (as for the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cumulo.events.bus import Ack, Bus, bus_from_url  # noqa: E402
from cumulo.testing import make_events  # noqa: E402
from tests.servers.kafka import kafka_broker, kafka_url  # noqa: E402
from tests.servers.nats import nats_broker, nats_url  # noqa: E402
from tests.servers.redis import redis_broker, redis_url  # noqa: E402

PUBLISHERS, BATCHES, BATCH = 8, 20, 100
END_TO_END = 5_000
RATE, LATENCY_SECONDS = 500, 4
SINGLE_PUBLISHES = 1_000


def row(benchmark: str, value: float, unit: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit}


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def publish_rate(bus: Bus, topic: str) -> float:
    batches = [[make_events(BATCH) for _ in range(BATCHES)] for _ in range(PUBLISHERS)]

    async def publisher(own: list[list]) -> None:
        for batch in own:
            await bus.publish(topic, batch)

    started = time.perf_counter()
    await asyncio.gather(*map(publisher, batches))
    return PUBLISHERS * BATCHES * BATCH / (time.perf_counter() - started)


async def consume(bus: Bus, group: str, count: int, seen: dict[str, float]) -> None:
    """Lease and ack until ``count`` events were seen; when each arrived, by id."""
    while len(seen) < count:
        messages = await bus.fetch(group, limit=BATCH, lease=30)
        if not messages:
            await bus.wait(group, 0.05)
            continue
        now = time.perf_counter()
        seen.update({m.event.id: now for m in messages})
        await bus.settle(group, [Ack(m.offset) for m in messages])


async def end_to_end(bus: Bus, topic: str) -> float:
    await bus.subscribe("bench-e2e", topic)
    seen: dict[str, float] = {}
    consumer = asyncio.create_task(consume(bus, "bench-e2e", END_TO_END, seen))
    started = time.perf_counter()
    for _ in range(END_TO_END // BATCH):
        await bus.publish(topic, make_events(BATCH))
    await asyncio.wait_for(consumer, 120)
    return END_TO_END / (max(seen.values()) - started)


async def latency(bus: Bus, topic: str) -> tuple[float, float]:
    await bus.subscribe("bench-latency", topic)
    count = RATE * LATENCY_SECONDS
    seen: dict[str, float] = {}
    sent: dict[str, float] = {}
    consumer = asyncio.create_task(consume(bus, "bench-latency", count, seen))
    started = time.perf_counter()
    for n, event in enumerate(make_events(count)):
        await asyncio.sleep(max(started + n / RATE - time.perf_counter(), 0))
        sent[event.id] = time.perf_counter()
        await bus.publish(topic, [event])
    await asyncio.wait_for(consumer, 120)
    delays = [(seen[id] - at) * 1000 for id, at in sent.items()]
    return percentile(delays, 50), percentile(delays, 99)


async def measure(name: str, url: str) -> list[dict[str, object]]:
    async with bus_from_url(url) as bus:
        published = await publish_rate(bus, "bench-publish")
        throughput = await end_to_end(bus, "bench-e2e")
        p50, p99 = await latency(bus, "bench-latency")
    return [
        row(
            f"{name}: publish, {PUBLISHERS} publishers x batches of {BATCH}", published, "events/s"
        ),
        row(f"{name}: end to end, publish → lease → ack", throughput, "events/s"),
        row(f"{name}: publish → consumer p50 at {RATE}/s", p50, "ms"),
        row(f"{name}: publish → consumer p99 at {RATE}/s", p99, "ms"),
    ]


@contextlib.contextmanager
def servers(folder: Path) -> Iterator[dict[str, str]]:
    """Redis, NATS and Kafka on loopback; the bus URL of each backend."""
    started = [
        redis_broker(folder / "redis"),
        nats_broker(folder / "nats"),
        kafka_broker(folder / "kafka"),
    ]
    try:
        for server in started:
            server.start()
        redis, nats, kafka = started
        yield {
            "sqlite": f"sqlite:///{folder / 'bus.db'}",
            "redis": redis_url(redis, db=1),
            "nats": nats_url(nats, prefix="BENCH"),
            "kafka": kafka_url(kafka, prefix="bench"),
            "_redis_dapr": redis_url(redis, db=2),
        }
    finally:
        for server in started:
            server.stop()


async def call_times(bus: Bus, count: int) -> list[float]:
    times = []
    for event in make_events(count):
        started = time.perf_counter()
        await bus.publish("bench-dapr", [event])
        times.append((time.perf_counter() - started) * 1000)
    return times


async def dapr_overhead(redis: str, folder: Path) -> list[dict[str, object]]:
    """Publish call latency through daprd, and straight to the same Redis."""
    from cumulo.runtimes.dapr import component
    from tests.servers.dapr import launch_daprd

    daprd = launch_daprd(folder / "daprd", [component("pubsub", redis)], app_id="bench")
    try:
        async with bus_from_url(daprd.bus_url("pubsub")) as through:
            via_dapr = await call_times(through, SINGLE_PUBLISHES)
        async with bus_from_url(redis) as direct:
            straight = await call_times(direct, SINGLE_PUBLISHES)
    finally:
        daprd.stop()
    added = percentile(via_dapr, 99) - percentile(straight, 99)
    return [
        row("dapr: publish through daprd, p50", percentile(via_dapr, 50), "ms"),
        row("dapr: publish through daprd, p99", percentile(via_dapr, 99), "ms"),
        row("redis: the same publish direct, p99", percentile(straight, 99), "ms"),
        row("dapr: added p99 latency", added, "ms"),
    ]


async def run_all(folder: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with servers(folder) as urls:
        for name in ("sqlite", "redis", "nats", "kafka"):
            rows += await measure(name, urls[name])
        rows += await dapr_overhead(urls["_redis_dapr"], folder)
    return rows


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(run_all(Path(folder)))


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
