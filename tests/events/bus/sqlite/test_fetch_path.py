"""The fetch path through SqliteBus: filters run on the reader, so the writer is never held by one.

Some tests act from inside a trigger filter, which runs while a fetch is planned
and before the writer takes it: that is how they commit a publish or a replay
exactly between the two.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from cumulo.events.bus.base import Ack, Nack
from cumulo.events.bus.sqlite import SqliteBus
from cumulo.events.event import Event
from cumulo.testing import make_events

BOUND = 2.0  # seconds: longer than any of these steps takes, short enough to fail fast
LEASE = 30.0
WRITER = "cumulo-sqlite-writer"


def on_loop(loop: asyncio.AbstractEventLoop) -> Callable[..., object]:
    """Run a coroutine on ``loop`` from the reader thread and wait for its result."""

    def run(coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(BOUND)  # type: ignore[arg-type]

    return run


async def test_trigger_filters_run_on_the_reader_not_the_writer(sqlite_bus: SqliteBus):
    await sqlite_bus.subscribe("g", "orders")
    await sqlite_bus.publish("orders", make_events(3))
    threads: set[str] = set()

    def accept(event: Event) -> bool:
        threads.add(threading.current_thread().name)
        return True

    assert len(await sqlite_bus.fetch("g", limit=10, lease=LEASE, accept=accept)) == 3
    assert threads and WRITER not in threads


async def test_a_publish_commits_while_a_filter_runs_and_the_next_wait_notices_it(
    sqlite_bus: SqliteBus,
):
    await sqlite_bus.subscribe("g", "orders")
    (first,) = await sqlite_bus.publish("orders", make_events(1))
    filtering, release = threading.Event(), threading.Event()

    def slow_accept(event: Event) -> bool:
        filtering.set()
        return release.wait(BOUND)

    fetching = asyncio.ensure_future(
        sqlite_bus.fetch("g", limit=10, lease=LEASE, accept=slow_accept)
    )
    assert await asyncio.to_thread(filtering.wait, BOUND)
    # the filter is still running: with it inside the writer's transaction, this would hang
    (second,) = await asyncio.wait_for(sqlite_bus.publish("orders", make_events(1)), BOUND)
    release.set()
    assert [m.offset for m in await fetching] == [first]  # planned before the publish
    await asyncio.wait_for(sqlite_bus.wait("g", 60), BOUND)  # rung by the publish: not missed
    assert [m.offset for m in await sqlite_bus.fetch("g", limit=10, lease=LEASE)] == [second]


async def test_a_replay_between_plan_and_take_makes_the_fetch_plan_again(sqlite_bus: SqliteBus):
    await sqlite_bus.subscribe("g", "orders", start="earliest")
    offsets = await sqlite_bus.publish("orders", make_events(4))
    taken = await sqlite_bus.fetch("g", limit=2, lease=LEASE)
    await sqlite_bus.settle("g", [Ack(m.offset) for m in taken])
    run = on_loop(asyncio.get_running_loop())
    replayed: list[int] = []

    def accept(event: Event) -> bool:
        if not replayed:  # the first plan: rewind the group under it
            replayed.append(run(sqlite_bus.replay(group="g", from_offset=offsets[0])))  # type: ignore[arg-type]
        return True

    again = await sqlite_bus.fetch("g", limit=10, lease=LEASE, accept=accept)
    assert replayed == [2]  # the two acked come again
    assert [(m.offset, m.attempt) for m in again] == [(offset, 1) for offset in offsets]
    assert await sqlite_bus.fetch("g", limit=10, lease=LEASE) == []


async def test_a_plan_that_keeps_going_stale_is_finally_made_inside_the_writer(
    sqlite_bus: SqliteBus,
):
    await sqlite_bus.subscribe("g", "orders", start="earliest")
    offsets = await sqlite_bus.publish("orders", make_events(4))
    run = on_loop(asyncio.get_running_loop())
    threads: list[str] = []
    cursors: list[int] = []  # where each reader plan moved the group's cursor under itself
    seen: list[int] = []

    def accept(event: Event) -> bool:
        n = int(event.data["n"])
        first_of_a_plan = not seen or n <= seen[-1]
        seen.append(n)
        threads.append(threading.current_thread().name)
        if first_of_a_plan and threads[-1] != WRITER:
            cursors.append(offsets[1] if n == 0 else 0)  # to where this plan did not begin
            run(sqlite_bus.replay(group="g", from_offset=cursors[-1] + 1))
        return True

    messages = await sqlite_bus.fetch("g", limit=10, lease=LEASE, accept=accept)
    assert threads[-1] == WRITER and threads[0] != WRITER
    expected = [offset for offset in offsets if offset > cursors[-1]]
    assert [(m.offset, m.attempt) for m in messages] == [(offset, 1) for offset in expected]
    (info,) = await sqlite_bus.groups()
    assert (info.cursor, info.pending, info.backlog) == (offsets[-1], len(expected), 0)


async def test_concurrent_consumers_of_one_group_get_every_event_once(sqlite_bus: SqliteBus):
    await sqlite_bus.subscribe("g", "orders")
    offsets = await sqlite_bus.publish("orders", make_events(400))
    fetches: list[list[int]] = []

    async def consumer() -> None:
        while messages := await sqlite_bus.fetch("g", limit=25, lease=LEASE):
            fetches.append([m.offset for m in messages])
            await sqlite_bus.settle("g", [Ack(m.offset) for m in messages])

    await asyncio.wait_for(asyncio.gather(*(consumer() for _ in range(4))), 10 * BOUND)
    seen = [offset for fetch in fetches for offset in fetch]
    assert sorted(seen) == offsets  # each once, none lost
    assert all(fetch == sorted(fetch) for fetch in fetches)  # in offset order within a fetch
    assert all(len(fetch) == 25 for fetch in fetches)  # none cut short by another consumer


async def test_concurrent_fetches_share_transactions_with_publishes(sqlite_bus: SqliteBus):
    await sqlite_bus.subscribe("g", "orders")
    await sqlite_bus.publish("orders", make_events(100))
    before = sqlite_bus.transactions
    work = [sqlite_bus.fetch("g", limit=5, lease=LEASE) for _ in range(20)]
    work += [sqlite_bus.publish("other", make_events(1)) for _ in range(20)]
    results = await asyncio.gather(*work)
    fetched = [m.offset for messages in results[:20] for m in messages]  # type: ignore[union-attr]
    assert len(fetched) == len(set(fetched)) == 100
    assert sqlite_bus.transactions - before < 40  # fewer commits than writes


async def test_a_fetch_cancelled_while_its_filter_runs_leases_nothing_and_claims_nothing(
    sqlite_bus: SqliteBus,
):
    await sqlite_bus.subscribe("g", "orders")
    (retried,) = await sqlite_bus.publish("orders", make_events(1))
    (first,) = await sqlite_bus.fetch("g", limit=1, lease=LEASE)
    await sqlite_bus.settle("g", [Nack(first.offset, delay=0)])  # due again at once
    (new,) = await sqlite_bus.publish("orders", make_events(1))
    filtering, release = threading.Event(), threading.Event()

    def slow_accept(event: Event) -> bool:
        filtering.set()
        return release.wait(BOUND)

    fetching = asyncio.ensure_future(
        sqlite_bus.fetch("g", limit=10, lease=LEASE, accept=slow_accept)
    )
    assert await asyncio.to_thread(filtering.wait, BOUND)  # planned: the retry and the new one
    fetching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fetching
    release.set()
    again = await sqlite_bus.fetch("g", limit=10, lease=LEASE)
    assert [(m.offset, m.attempt) for m in again] == [(retried, 2), (new, 1)]


async def test_a_scan_the_filter_rejects_whole_leaves_the_next_wait_awake(sqlite_bus: SqliteBus):
    """A fetch whose bounded scan found nothing it wanted, with events left past the scan,
    must not let the dispatcher's ``wait`` sleep its full idle poll before fetching again."""
    await sqlite_bus.subscribe("g", "t", start="earliest")
    await sqlite_bus.publish("t", make_events(300, type="noise") + make_events(1, type="wanted"))

    def wanted(event: Event) -> bool:
        return event.type == "wanted"

    found = []
    loop = asyncio.get_running_loop()
    began = loop.time()
    while not found:
        found = await sqlite_bus.fetch("g", limit=1, lease=30, accept=wanted)  # scans 50 a time
        if not found:
            await sqlite_bus.wait("g", 5.0)
    assert found[0].event.type == "wanted"
    assert loop.time() - began < 2.0  # six scans; before, each empty one slept 5 s
