"""SQLite bus throughput: durable publishes (group commit) and fetch + ack.

Every publish is durable (WAL, ``synchronous=FULL``): when it returns, the
events survive ``kill -9``. Group commit lets concurrent publishers share one
transaction and one fsync, so throughput grows with concurrency.

Rows ``{"benchmark", "value", "unit"}``:

- batched publish: several coroutines publishing lists of 100 events (goal: at
  least 20,000 events/s on a 2-core machine);
- concurrent single-event publishes, and one-at-a-time publishes for contrast
  (each of those pays a whole fsync);
- fetch + ack: consumers leasing 100 events at a time and acking them.

Run standalone: ``python benchmarks/bench_bus.py``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from cumulo.events.bus import Ack, BusSettings
from cumulo.events.bus.sqlite import SqliteBus, SqliteSettings
from cumulo.testing import make_events

BATCH = 100
PUBLISHERS = 8
BATCHES_PER_PUBLISHER = 40  # 8 * 40 * 100 = 32,000 events
SINGLE_PUBLISHERS = 64
SINGLES_PER_PUBLISHER = 40  # 2,560 events
SEQUENTIAL = 200
CONSUMERS = 4


def row(benchmark: str, value: float, unit: str = "events/s") -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value), "unit": unit}


async def timed(count: int, work: Callable[[], Awaitable[object]]) -> float:
    """``count`` divided by the seconds ``work`` took."""
    started = time.perf_counter()
    await work()
    return count / (time.perf_counter() - started)


async def publishers(bus: SqliteBus, count: int, per: int, size: int) -> float:
    """Events/s of ``count`` concurrent publishers, each publishing ``per`` lists of ``size``."""
    batches = [[make_events(size) for _ in range(per)] for _ in range(count)]

    async def publisher(own: list[list]) -> None:
        for batch in own:
            await bus.publish("bench", batch)

    return await timed(count * per * size, lambda: asyncio.gather(*map(publisher, batches)))


async def fetch_and_ack(bus: SqliteBus, total: int) -> float:
    """Events/s of consumers leasing and acking everything published so far."""
    await bus.subscribe("bench-consumers", "bench", start="earliest")

    async def consumer() -> None:
        while messages := await bus.fetch("bench-consumers", limit=BATCH, lease=30):
            await bus.settle("bench-consumers", [Ack(m.offset) for m in messages])

    return await timed(total, lambda: asyncio.gather(*(consumer() for _ in range(CONSUMERS))))


async def sequential(bus: SqliteBus) -> float:
    events = make_events(SEQUENTIAL)

    async def one_by_one() -> None:
        for event in events:
            await bus.publish("bench-seq", [event])

    return await timed(SEQUENTIAL, one_by_one)


async def run(tmpdir: Path | str) -> list[dict[str, object]]:
    """Benchmark rows for a bus file in ``tmpdir``."""
    settings = SqliteSettings(Path(tmpdir) / "bench-bus.db", bus=BusSettings())
    bus = SqliteBus(settings)
    async with bus:
        batched = await publishers(bus, PUBLISHERS, BATCHES_PER_PUBLISHER, BATCH)
        commits = bus.transactions
        singles = await publishers(bus, SINGLE_PUBLISHERS, SINGLES_PER_PUBLISHER, 1)
        single_count = SINGLE_PUBLISHERS * SINGLES_PER_PUBLISHER
        per_commit = single_count / max(bus.transactions - commits, 1)
        one_at_a_time = await sequential(bus)
        total = PUBLISHERS * BATCHES_PER_PUBLISHER * BATCH + single_count
        consumed = await fetch_and_ack(bus, total)
    return [
        row(f"sqlite publish, batches of {BATCH}, {PUBLISHERS} publishers", batched),
        row(f"sqlite publish, single events, {SINGLE_PUBLISHERS} publishers", singles),
        row("sqlite publish, single events, group commit", per_commit, "publishes/commit"),
        row("sqlite publish, single events, one at a time", one_at_a_time),
        row(f"sqlite fetch {BATCH} + ack, {CONSUMERS} consumers", consumed),
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        for result in asyncio.run(run(folder)):
            print(json.dumps(result))
