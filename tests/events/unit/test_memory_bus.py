"""MemoryBus details the cross-backend contract suite (tests/events/bus) does not pin down.

The contract suite runs MemoryBus next to the real backends; these tests cover
what is MemoryBus's own (its test helpers, its bounded scan, its wake-ups) and
settlement details every backend shares but the suite does not check.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cumulo.errors import BusError, InvalidEventError
from cumulo.events.bus.base import Accept, Ack, BusSettings, DeadLetter, Nack
from cumulo.events.event import Event, new_event
from cumulo.testing import SCAN_FACTOR, MemoryBus, make_events
from tests.events.unit.conftest import loop_turns

LEASE = 30.0


async def subscribed(topic: str = "orders") -> MemoryBus:
    bus = MemoryBus()
    await bus.subscribe("g", topic, start="earliest")
    return bus


def of_type(name: str) -> Accept:
    return lambda event: event.type == name


# --- helpers and defaults --------------------------------------------------------------------


def test_make_events_numbers_fresh_events() -> None:
    events = make_events(3, type="com.shop.order", source="/shop")
    assert [event.data for event in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {event.type for event in events} == {"com.shop.order"}
    assert {event.source for event in events} == {"/shop"}
    assert len({event.id for event in events}) == 3
    assert make_events(0) == []


def test_a_memory_bus_has_a_url_and_the_default_settings() -> None:
    bus = MemoryBus()
    assert bus.url == "memory://"
    assert bus.settings == BusSettings()


async def test_events_are_stored_as_json_not_as_the_objects_given() -> None:
    bus = MemoryBus()
    event = new_event("t", "/s", {"items": [1]})
    await bus.publish("orders", [event])
    event.data["items"].append(2)
    event.attributes["region"] = "eu"
    [stored] = await bus.read("orders")
    assert stored.event.data == {"items": [1]} and "region" not in stored.event.attributes
    assert stored.event is not event


# --- fetching ------------------------------------------------------------------------------------


async def test_a_fetch_scans_a_bounded_number_of_new_events() -> None:
    """A picky filter over a long backlog: each fetch looks at ``limit * SCAN_FACTOR`` at most."""
    bus = await subscribed()
    noise = make_events(SCAN_FACTOR + 10, type="noise")
    [*_, wanted] = await bus.publish("orders", [*noise, new_event("wanted", "/s")])
    assert await bus.fetch("g", limit=1, lease=LEASE, accept=of_type("wanted")) == []
    [group] = await bus.groups()
    assert (group.cursor, group.backlog, group.pending) == (SCAN_FACTOR, 11, 0)
    [found] = await bus.fetch("g", limit=1, lease=LEASE, accept=of_type("wanted"))
    assert found.offset == wanted


async def test_the_scan_stops_at_the_last_event_it_takes() -> None:
    bus = await subscribed()
    await bus.publish("orders", make_events(5))
    taken = await bus.fetch("g", limit=2, lease=LEASE)
    assert [message.offset for message in taken] == [1, 2]
    [group] = await bus.groups()
    assert (group.cursor, group.backlog, group.pending) == (2, 3, 2)


async def test_due_retries_come_before_new_events() -> None:
    bus = await subscribed()
    await bus.publish("orders", make_events(1))
    [first] = await bus.fetch("g", limit=1, lease=LEASE)
    await bus.settle("g", [Nack(first.offset, 0.0, "E: again")])
    await bus.publish("orders", make_events(1))
    both = await bus.fetch("g", limit=2, lease=LEASE)
    assert [(m.offset, m.attempt) for m in both] == [(1, 2), (2, 1)]


async def test_a_fetch_of_nothing_changes_nothing() -> None:
    bus = await subscribed()
    await bus.publish("orders", make_events(2))
    assert await bus.fetch("g", limit=0, lease=LEASE) == []
    [group] = await bus.groups()
    assert (group.cursor, group.pending, group.backlog) == (0, 0, 2)


async def test_leased_messages_carry_their_topic_and_publish_time() -> None:
    bus = await subscribed()
    before = time.time()
    await bus.publish("orders", make_events(1))
    after = time.time()
    [message] = await bus.fetch("g", limit=1, lease=LEASE)
    assert message.topic == "orders" and message.attempt == 1
    assert before <= message.published_at <= after  # wall-clock seconds


# --- settling -----------------------------------------------------------------------------------


async def test_a_nack_for_a_message_not_leased_is_ignored() -> None:
    bus = await subscribed()
    await bus.settle("g", [Nack(99, 0.0, "E: x")])
    assert (await bus.groups())[0].pending == 0


async def test_replies_are_deduplicated_but_dead_letters_are_not() -> None:
    """Two copies acked with the same reply publish it once; two dead letters stay two."""
    bus = await subscribed()
    await bus.publish("orders", make_events(4))
    one, two, three, four = await bus.fetch("g", limit=4, lease=LEASE)
    reply = new_event("reply", "/fn", id="r-1")
    await bus.settle("g", [Ack(one.offset, [("replies", reply)])])
    await bus.settle("g", [Ack(two.offset, [("replies", reply)])])
    letter = new_event("order", "/shop", id="dead-1")
    await bus.settle("g", [DeadLetter(three.offset, "dlq", letter)])
    await bus.settle("g", [DeadLetter(four.offset, "dlq", letter)])
    assert [m.event.id for m in await bus.read("replies")] == ["r-1"]
    assert [m.event.id for m in await bus.read("dlq")] == ["dead-1", "dead-1"]
    assert (await bus.groups())[0].pending == 0


async def test_a_dead_letter_is_refused_like_any_invalid_event() -> None:
    bus = await subscribed()
    await bus.publish("orders", make_events(1))
    [message] = await bus.fetch("g", limit=1, lease=LEASE)
    bad = Event({"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "note": "a\nb"})
    with pytest.raises(InvalidEventError, match="'note' holds a control character"):
        await bus.settle("g", [DeadLetter(message.offset, "dlq", bad)])
    assert await bus.read("dlq") == []
    assert (await bus.groups())[0].pending == 1


@pytest.mark.parametrize("method", ["settle", "wait"])
async def test_an_unknown_group_is_a_bus_error(method: str) -> None:
    bus = MemoryBus()
    with pytest.raises(BusError, match="unknown consumer group 'nobody'"):
        if method == "settle":
            await bus.settle("nobody", [Ack(1)])
        else:
            await bus.wait("nobody", 0.01)


# --- waiting ---------------------------------------------------------------------------------------


async def test_wait_returns_when_a_lease_runs_out() -> None:
    bus = await subscribed()
    await bus.publish("orders", make_events(1))
    await bus.fetch("g", limit=1, lease=0.05)
    async with asyncio.timeout(1):
        await bus.wait("g", 30.0)
    [again] = await bus.fetch("g", limit=1, lease=LEASE)
    assert again.attempt == 2


async def test_wait_returns_at_once_when_something_is_already_due() -> None:
    bus = await subscribed()
    await bus.publish("orders", make_events(1))
    [message] = await bus.fetch("g", limit=1, lease=LEASE)
    await bus.settle("g", [Nack(message.offset, 0.0)])
    await bus.fetch("g", limit=0, lease=LEASE)  # clears the bell; the retry is still due
    async with asyncio.timeout(0.5):
        await bus.wait("g", 30.0)


async def test_a_publish_to_another_topic_does_not_wake_the_group() -> None:
    bus = await subscribed()
    await bus.fetch("g", limit=1, lease=LEASE)  # clears the bell
    waiter = asyncio.create_task(bus.wait("g", 30.0))
    await bus.publish("payments", make_events(1))
    await loop_turns(20)
    assert not waiter.done()
    await bus.publish("orders", make_events(1))
    async with asyncio.timeout(1):
        await waiter


# --- replay, topics, trim ------------------------------------------------------------------------------


async def test_replaying_a_topic_nobody_consumes_rewinds_nothing() -> None:
    bus = MemoryBus()
    await bus.publish("orders", make_events(3))
    assert await bus.replay(topic="orders", from_offset=1) == 0


async def test_groups_are_listed_by_name() -> None:
    bus = MemoryBus()
    for name in ("zeta", "alpha", "mid"):
        await bus.subscribe(name, "orders")
    assert [group.name for group in await bus.groups()] == ["alpha", "mid", "zeta"]


async def test_a_topic_with_nothing_left_and_no_group_is_no_longer_listed() -> None:
    bus = MemoryBus(bus_settings=BusSettings(retention=0.0))
    await bus.publish("old", make_events(2))
    assert await bus.topics() == ["old"]
    assert await bus.trim() == 2
    assert await bus.topics() == []
    assert await bus.last_offset("old") == 0


async def test_trim_keeps_what_a_group_has_not_reached_however_old() -> None:
    bus = MemoryBus(bus_settings=BusSettings(retention=0.0))
    await bus.subscribe("g", "orders", start="earliest")
    await bus.publish("orders", make_events(3))
    [first] = await bus.fetch("g", limit=1, lease=LEASE)
    await bus.settle("g", [Ack(first.offset)])
    assert await bus.trim() == 1
    assert [m.offset for m in await bus.read("orders")] == [2, 3]
