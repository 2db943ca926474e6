"""Bus contract, the log: publish, read, dedup, topics, retention. Runs on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from cumulo.errors import InvalidEventError
from cumulo.events.bus import Ack, Bus
from cumulo.events.event import Event, new_event
from cumulo.testing import make_events
from tests.events.bus.conftest import MakeBus


async def test_publish_returns_increasing_offsets_and_read_returns_events_in_order(bus: Bus):
    sent = make_events(5)
    offsets = await bus.publish("orders", sent)
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    messages = await bus.read("orders")
    assert [m.offset for m in messages] == offsets
    assert [m.event for m in messages] == sent
    assert all(m.topic == "orders" and m.attempt == 0 for m in messages)


async def test_read_pages_with_after_and_limit_and_filters_by_time(bus: Bus):
    first = await bus.publish("orders", make_events(3))
    between = time.time()
    await asyncio.sleep(0.01)
    later = await bus.publish("orders", make_events(2))
    page = await bus.read("orders", after=first[0], limit=2)
    assert [m.offset for m in page] == first[1:3]
    assert [m.offset for m in await bus.read("orders", since=between)] == later
    assert await bus.read("nothing-here") == []


async def test_events_keep_bytes_data_and_extensions(bus: Bus):
    sent = new_event("t", "/s", b"\x00\xff", datacontenttype="application/octet-stream", tenant="a")
    await bus.publish("raw", [sent])
    (message,) = await bus.read("raw")
    assert message.event == sent


async def test_publishing_nothing_returns_nothing(bus: Bus):
    assert await bus.publish("orders", []) == []


async def test_publishing_an_invalid_event_stores_nothing(bus: Bus):
    with pytest.raises(InvalidEventError):
        await bus.publish("orders", [*make_events(1), Event({"id": "1"})])
    assert await bus.read("orders") == []


async def test_a_duplicate_within_the_window_gets_the_original_offset(bus: Bus):
    event = new_event("t", "/s", id="same")
    (first,) = await bus.publish("orders", [event])
    assert await bus.publish("orders", [event, event]) == [first, first]
    assert len(await bus.read("orders")) == 1


async def test_duplicates_inside_one_batch_are_stored_once(bus: Bus):
    event = new_event("t", "/s", id="same")
    other = new_event("t", "/s", id="other")
    offsets = await bus.publish("orders", [event, other, event])
    assert offsets[0] == offsets[2] != offsets[1]


async def test_dedup_is_per_topic_and_per_source(bus: Bus):
    event = new_event("t", "/s", id="same")
    (a,) = await bus.publish("a", [event])
    (b,) = await bus.publish("b", [event])
    (c,) = await bus.publish("a", [event.with_attributes(source="/other")])
    assert len({a, b, c}) == 3


async def test_dedup_can_be_turned_off_per_publish_and_per_bus(make_bus: MakeBus):
    event = new_event("t", "/s", id="same")
    bus = await make_bus()
    (first,) = await bus.publish("orders", [event])
    assert await bus.publish("orders", [event], dedup=False) != [first]
    no_window = await make_bus(dedup_window=0)
    offsets = await no_window.publish("orders", [event, event])
    assert offsets[0] != offsets[1]


async def test_dedup_forgets_after_the_window(make_bus: MakeBus):
    bus = await make_bus(dedup_window=0.05)
    event = new_event("t", "/s", id="same")
    (first,) = await bus.publish("orders", [event])
    await asyncio.sleep(0.08)
    (second,) = await bus.publish("orders", [event])
    assert second > first


async def test_topics_lists_published_and_subscribed_topics(bus: Bus):
    await bus.publish("b", make_events(2))
    await bus.publish("a", make_events(1))
    await bus.subscribe("g", "c")
    assert await bus.topics() == ["a", "b", "c"]


async def test_trim_removes_old_events_every_group_is_done_with(make_bus: MakeBus):
    bus = await make_bus(retention=0.05)
    await bus.subscribe("fast", "orders", start="earliest")
    await bus.subscribe("slow", "orders", start="earliest")
    offsets = await bus.publish("orders", make_events(4))
    await bus.publish("unwatched", make_events(2))
    fetched = await bus.fetch("fast", limit=4, lease=30)
    await bus.settle("fast", [Ack(m.offset) for m in fetched])
    (leased,) = await bus.fetch("slow", limit=1, lease=30)  # slow: 1 leased, 3 undelivered
    await asyncio.sleep(0.08)
    assert await bus.trim() == 2  # the unwatched topic; every "orders" event is still needed
    await bus.settle("slow", [Ack(leased.offset)])
    assert await bus.trim() == 1
    assert [m.offset for m in await bus.read("orders")] == offsets[1:]
    assert await bus.read("unwatched") == []


async def test_trim_forgets_expired_dedup_keys_and_never_reuses_offsets(make_bus: MakeBus):
    bus = await make_bus(retention=0.01, dedup_window=0.01)
    event = new_event("t", "/s", id="same")
    (first,) = await bus.publish("orders", [event])
    await asyncio.sleep(0.03)
    assert await bus.trim() == 1
    (again,) = await bus.publish("orders", [event])
    assert again > first
