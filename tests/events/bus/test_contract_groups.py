"""Bus contract, consumer groups: fetch, leases, settle, replay, wait. Runs on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from cumulo.errors import BusError, InvalidEventError
from cumulo.events.bus import Ack, Bus, DeadLetter, Nack
from cumulo.events.event import Event, new_event
from cumulo.testing import make_events

LEASE = 30.0


async def consume_all(bus: Bus, group: str) -> list[int]:
    """Fetch and ack until nothing is left; the offsets seen."""
    seen: list[int] = []
    while messages := await bus.fetch(group, limit=10, lease=LEASE):
        seen += [m.offset for m in messages]
        await bus.settle(group, [Ack(m.offset) for m in messages])
    return seen


async def test_groups_have_independent_cursors(bus: Bus):
    await bus.subscribe("a", "orders")
    await bus.subscribe("b", "orders")
    offsets = await bus.publish("orders", make_events(3))
    assert await consume_all(bus, "a") == offsets
    assert await consume_all(bus, "b") == offsets
    assert await consume_all(bus, "a") == []


async def test_a_group_may_be_named_like_a_trigger(bus: Bus):
    # The dispatcher's groups are "trigger/<name>"; names with dots and spaces too.
    for group in ("trigger/train-0", "trigger/a.b c"):
        await bus.subscribe(group, "orders", start="earliest")
    offsets = await bus.publish("orders", make_events(2))
    assert await consume_all(bus, "trigger/train-0") == offsets
    groups = {info.name: info for info in await bus.groups()}
    assert {"trigger/train-0", "trigger/a.b c"} <= set(groups)
    assert groups["trigger/a.b c"].topic == "orders"


async def test_subscribe_latest_skips_the_past_and_earliest_starts_at_the_beginning(bus: Bus):
    old = await bus.publish("orders", make_events(2))
    await bus.subscribe("late", "orders", start="latest")
    await bus.subscribe("all", "orders", start="earliest")
    new = await bus.publish("orders", make_events(1))
    assert await consume_all(bus, "late") == new
    assert await consume_all(bus, "all") == old + new


async def test_subscribing_again_keeps_the_cursor_and_the_topic(bus: Bus):
    await bus.subscribe("g", "orders", start="earliest")
    await bus.publish("orders", make_events(2))
    await consume_all(bus, "g")
    await bus.subscribe("g", "orders", start="earliest")
    assert await consume_all(bus, "g") == []
    with pytest.raises(BusError):
        await bus.subscribe("g", "payments")


async def test_fetching_an_unknown_group_fails(bus: Bus):
    with pytest.raises(BusError):
        await bus.fetch("nobody", limit=1, lease=LEASE)


async def test_fetch_leases_up_to_limit_and_hides_leased_messages(bus: Bus):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(5))
    first = await bus.fetch("g", limit=3, lease=LEASE)
    assert [(m.offset, m.attempt) for m in first] == [(o, 1) for o in offsets[:3]]
    rest = await bus.fetch("g", limit=10, lease=LEASE)
    assert [m.offset for m in rest] == offsets[3:]
    assert await bus.fetch("g", limit=10, lease=LEASE) == []


async def test_filter_rejected_events_are_skipped_for_good(bus: Bus):
    await bus.subscribe("g", "orders")
    sent = make_events(6)
    offsets = await bus.publish("orders", sent)
    even = await bus.fetch("g", limit=10, lease=LEASE, accept=lambda e: e.data["n"] % 2 == 0)
    assert [m.offset for m in even] == offsets[0::2]
    assert await bus.fetch("g", limit=10, lease=LEASE) == []
    (info,) = await bus.groups()
    assert (info.cursor, info.pending, info.backlog) == (offsets[-1], 3, 0)


async def test_a_filter_that_raises_changes_nothing(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(2))
    (leased,) = await bus.fetch("g", limit=1, lease=0.01)
    await asyncio.sleep(0.02)
    with pytest.raises(ZeroDivisionError):
        await bus.fetch("g", limit=3, lease=LEASE, accept=lambda event: 1 / 0 > 0)
    again = await bus.fetch("g", limit=3, lease=LEASE)
    assert [m.attempt for m in again] == [2, 1] and again[0].offset == leased.offset


async def test_an_expired_lease_is_delivered_again_with_the_next_attempt(bus: Bus):
    await bus.subscribe("g", "orders")
    (offset,) = await bus.publish("orders", make_events(1))
    (first,) = await bus.fetch("g", limit=1, lease=0.2)
    assert await bus.fetch("g", limit=1, lease=0.2) == []
    await asyncio.sleep(0.25)
    (again,) = await bus.fetch("g", limit=1, lease=LEASE)
    assert (again.offset, again.attempt, again.event) == (offset, 2, first.event)


async def test_a_nacked_message_comes_back_after_its_delay(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(1))
    (message,) = await bus.fetch("g", limit=1, lease=LEASE)
    await bus.settle("g", [Nack(message.offset, 0.2, "boom")])
    assert await bus.fetch("g", limit=1, lease=LEASE) == []
    await asyncio.sleep(0.25)
    (again,) = await bus.fetch("g", limit=1, lease=LEASE)
    assert (again.offset, again.attempt) == (message.offset, 2)


async def test_dead_letter_publishes_to_the_dlq_topic_and_ends_the_delivery(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(1))
    (message,) = await bus.fetch("g", limit=1, lease=0.01)
    dead = message.event.with_attributes(knativeerrordest="fn")
    await bus.settle("g", [DeadLetter(message.offset, "orders.dlq", dead)])
    await bus.settle("g", [DeadLetter(message.offset, "orders.dlq", dead)])  # no dedup there
    await asyncio.sleep(0.02)
    assert await bus.fetch("g", limit=1, lease=LEASE) == []
    assert [m.event for m in await bus.read("orders.dlq")] == [dead, dead]
    assert (await bus.groups())[0].pending == 0


async def test_ack_publishes_what_the_function_returned(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(1))
    (message,) = await bus.fetch("g", limit=1, lease=LEASE)
    replies = [new_event("reply", "/fn"), new_event("audit", "/fn")]
    await bus.settle(
        "g", [Ack(message.offset, emit=[("replies", replies[0]), ("audit", replies[1])])]
    )
    assert [m.event for m in await bus.read("replies")] == replies[:1]
    assert [m.event for m in await bus.read("audit")] == replies[1:]
    assert (await bus.groups())[0].pending == 0


async def test_settle_is_atomic(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(2))
    first, second = await bus.fetch("g", limit=2, lease=LEASE)
    with pytest.raises(InvalidEventError):
        await bus.settle(
            "g",
            [
                Ack(first.offset, emit=[("replies", new_event("r", "/fn"))]),
                Ack(second.offset, emit=[("replies", Event({"id": "x"}))]),
            ],
        )
    assert await bus.read("replies") == []
    assert (await bus.groups())[0].pending == 2


async def test_replay_a_group_from_an_offset(bus: Bus):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(4))
    await consume_all(bus, "g")
    assert await bus.replay(group="g", from_offset=offsets[1]) == 3
    assert await consume_all(bus, "g") == offsets[1:]


async def test_replay_from_a_time(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(2))
    await asyncio.sleep(0.01)
    moment = time.time()
    later = await bus.publish("orders", make_events(2))
    await consume_all(bus, "g")
    assert await bus.replay(group="g", from_time=moment) == 2
    assert await consume_all(bus, "g") == later


async def test_replay_a_topic_rewinds_every_group_on_it(bus: Bus):
    for group in ("a", "b"):
        await bus.subscribe(group, "orders")
    await bus.subscribe("other", "payments")
    offsets = await bus.publish("orders", make_events(2))
    for group in ("a", "b"):
        await consume_all(bus, group)
    assert await bus.replay(topic="orders", from_offset=offsets[0]) == 4
    assert await consume_all(bus, "a") == offsets
    assert await consume_all(bus, "b") == offsets


async def test_replay_does_not_duplicate_a_message_still_leased(bus: Bus):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(2))
    await bus.fetch("g", limit=2, lease=LEASE)
    await bus.replay(group="g", from_offset=offsets[0])
    assert await bus.fetch("g", limit=10, lease=LEASE) == []


async def test_replay_needs_one_target_and_one_starting_point(bus: Bus):
    await bus.subscribe("g", "orders")
    with pytest.raises(ValueError):
        await bus.replay(group="g", topic="orders", from_offset=1)
    with pytest.raises(ValueError):
        await bus.replay(group="g")


async def test_groups_report_pending_and_backlog(bus: Bus):
    await bus.subscribe("g", "orders")
    offsets = await bus.publish("orders", make_events(5))
    await bus.fetch("g", limit=2, lease=LEASE)
    (info,) = await bus.groups()
    assert (info.name, info.topic, info.cursor) == ("g", "orders", offsets[1])
    assert (info.pending, info.backlog) == (2, 3)


async def test_wait_returns_when_the_groups_topic_gets_an_event(bus: Bus):
    await bus.subscribe("g", "orders")
    assert await bus.fetch("g", limit=1, lease=LEASE) == []
    waiting = asyncio.create_task(bus.wait("g", 10))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    await bus.publish("other-topic", make_events(1))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    await bus.publish("orders", make_events(1))
    await asyncio.wait_for(waiting, 2)


async def test_wait_does_not_miss_a_publish_between_fetch_and_wait(bus: Bus):
    await bus.subscribe("g", "orders")
    assert await bus.fetch("g", limit=1, lease=LEASE) == []
    await bus.publish("orders", make_events(1))
    await asyncio.wait_for(bus.wait("g", 10), 2)


async def test_wait_times_out_when_nothing_happens(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.fetch("g", limit=1, lease=LEASE)
    started = time.monotonic()
    await bus.wait("g", 0.05)
    assert 0.04 <= time.monotonic() - started < 1


async def test_wait_returns_when_a_retry_falls_due(bus: Bus):
    await bus.subscribe("g", "orders")
    await bus.publish("orders", make_events(1))
    (message,) = await bus.fetch("g", limit=1, lease=LEASE)
    assert await bus.fetch("g", limit=1, lease=LEASE) == []
    await bus.settle("g", [Nack(message.offset, 0.05)])
    started = time.monotonic()
    await bus.wait("g", 10)
    await asyncio.wait_for(_fetch_one(bus, "g"), 2)
    assert time.monotonic() - started < 2


async def _fetch_one(bus: Bus, group: str) -> None:
    while not await bus.fetch(group, limit=1, lease=LEASE):
        await bus.wait(group, 1)
