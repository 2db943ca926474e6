"""The bus wrapper that counts what is published through it, by bus and topic, on the
in-package :class:`~cumulo.testing.MemoryBus`."""

from __future__ import annotations

import copy
from collections import Counter

import pytest

from cumulo.errors import InvalidEventError
from cumulo.events.bus.base import Ack, BusSettings, DeadLetter, Nack
from cumulo.events.event import new_event
from cumulo.runtimes.local.observed_bus import ObservedBus, published_by
from cumulo.testing import MemoryBus, make_events


class Tally:
    """What the metrics would be told: (bus, topic) → events."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, bus: str, topic: str, count: int) -> None:
        self.counts[bus, topic] += count


@pytest.fixture
async def observed() -> tuple[ObservedBus, MemoryBus, Tally]:
    inner, tally = MemoryBus(bus_settings=BusSettings(dedup_window=0)), Tally()
    bus = ObservedBus("main", inner, tally)
    await bus.start()
    return bus, inner, tally


async def test_publishing_counts_the_events_by_topic(observed) -> None:
    bus, inner, tally = observed

    offsets = await bus.publish("orders", make_events(3))
    await bus.publish("audit", make_events(1))

    assert offsets == [1, 2, 3]
    assert tally.counts == {("main", "orders"): 3, ("main", "audit"): 1}
    assert [m.offset for m in await inner.read("orders")] == offsets  # it did reach the bus


async def test_replies_published_with_an_ack_and_dead_letters_are_counted(observed) -> None:
    bus, _, tally = observed
    await bus.subscribe("g", "orders", start="earliest")
    await bus.publish("orders", make_events(3))
    first, second, third = await bus.fetch("g", limit=3, lease=30)
    reply = new_event("order.billed", "/fn", {"n": 1})

    await bus.settle(
        "g",
        [
            Ack(
                first.offset, emit=[("billing", reply), ("billing", reply.with_attributes(id="r2"))]
            ),
            DeadLetter(second.offset, "dlq", second.event),
            Nack(third.offset, delay=5),
        ],
    )

    assert tally.counts == {("main", "orders"): 3, ("main", "billing"): 2, ("main", "dlq"): 1}
    assert len(await bus.read("billing")) == 2
    [letter] = await bus.read("dlq")
    assert letter.event.id == second.event.id


async def test_a_settle_the_bus_refuses_counts_nothing(observed) -> None:
    bus, _, tally = observed
    await bus.subscribe("g", "orders", start="earliest")
    await bus.publish("orders", make_events(1))
    [message] = await bus.fetch("g", limit=1, lease=30)
    broken = new_event("order.billed", "/fn").with_attributes(type="")  # a required attribute empty

    with pytest.raises(InvalidEventError):
        await bus.settle("g", [Ack(message.offset, emit=[("billing", broken)])])

    assert tally.counts == {("main", "orders"): 1}


async def test_reads_and_admin_calls_are_the_inner_buses(observed) -> None:
    bus, inner, _ = observed
    await bus.subscribe("g", "orders", start="earliest")
    await bus.publish("orders", make_events(2))
    fetched = await bus.fetch("g", limit=2, lease=30)
    await bus.settle("g", [Ack(m.offset) for m in fetched])

    assert await bus.last_offset("orders") == 2
    assert await bus.topics() == ["orders"]
    assert await bus.groups() == await inner.groups()
    assert await bus.replay(group="g", from_offset=1) == 2
    [again, _] = await bus.fetch("g", limit=2, lease=30)
    assert again.offset == 1
    assert [m.offset for m in await bus.read("orders", after=1)] == [2]
    await bus.wait("g", 0)
    assert await bus.trim() == 0  # within retention: nothing removed
    await bus.close()


async def test_other_attributes_are_the_inner_buses(observed) -> None:
    bus, inner, _ = observed

    assert bus.url == inner.url == "memory://"
    assert bus.settings is inner.settings  # not defined on the wrapper: looked up on the inner bus
    with pytest.raises(AttributeError):
        bus.no_such_attribute  # noqa: B018


def test_a_copy_is_a_working_wrapper_of_the_same_bus() -> None:
    inner, tally = MemoryBus(), Tally()
    bus = ObservedBus("main", inner, tally)

    copied = copy.copy(bus)

    assert copied.inner is inner and copied.name == "main"
    assert copied.settings is inner.settings


def test_published_by_counts_ack_replies_and_dead_letters_only() -> None:
    event = new_event("t", "/s")

    counted = published_by(
        [
            Ack(1, emit=[("a", event), ("b", event), ("a", event)]),
            Ack(2),
            Nack(3, delay=1),
            DeadLetter(4, "dlq", event),
        ]
    )

    assert counted == Counter({"a": 2, "b": 1, "dlq": 1})
