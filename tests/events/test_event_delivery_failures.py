"""An event whose delivery raises inside the dispatcher: retried, dead-lettered with why, counted.

Before, such an event was left to its lease and came back forever: never
dead-lettered, never counted, and holding back retention for its topic.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cumulo.errors import EncodingError
from cumulo.events import cloudevent, delivery
from cumulo.events.bus.base import BusSettings
from cumulo.events.cloudevent import binary_http
from cumulo.events.dispatcher import TriggerDispatcher
from cumulo.events.event import Event, new_event
from cumulo.events.outcome import Outcome, Success
from cumulo.spec.models import Metadata, Trigger, TriggerSpec
from cumulo.testing import MemoryBus

RETRIES = 2


class BinaryDestination:
    """Sends each event in binary mode, as a worker pool does; counts what it could send."""

    def __init__(self) -> None:
        self.sent: list[Event] = []

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        binary_http(event)
        self.sent.append(event)
        return Success()


class RaisingDestination:
    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        raise RuntimeError("the destination broke")


def trigger() -> Trigger:
    spec = TriggerSpec(
        function="fn", delivery={"retries": RETRIES, "backoffDelay": 0.01, "maxBackoff": 0.05}
    )
    return Trigger(metadata=Metadata(name="poison"), spec=spec)


async def run_until_dead_lettered(bus: MemoryBus, destination, event: Event) -> TriggerDispatcher:
    dispatcher = TriggerDispatcher(bus, trigger(), destination, function_timeout=1, concurrency=1)
    task = asyncio.create_task(dispatcher.run())
    try:
        while not await bus.groups():  # subscribed: what is published now is delivered
            await asyncio.sleep(0.01)
        await bus.publish("default", [event])
        async with asyncio.timeout(5):  # a lease would bring it back only after 11 s
            while dispatcher.stats.dead_lettered == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # nothing more happens to it
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return dispatcher


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(bus_settings=BusSettings(retention=0.0))


def refuse_to_encode(data, content_type):
    raise EncodingError(["data cannot be written as JSON: simulated"])


async def test_an_event_that_cannot_be_encoded_is_retried_then_dead_lettered(
    bus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudevent, "encode_data", refuse_to_encode)
    destination = BinaryDestination()
    event = new_event("test.poison", "/tests", {"n": 1}, id="poison-1")

    dispatcher = await run_until_dead_lettered(bus, destination, event)

    assert destination.sent == []
    assert (dispatcher.stats.retried, dispatcher.stats.dead_lettered) == (RETRIES, 1)
    assert dispatcher.stats.delivered == 0
    [dead] = [m.event for m in await bus.read("dead-letter")]
    assert dead.id == "poison-1"
    assert dead.attributes[delivery.ERROR_TYPE] == "EncodingError"
    assert "simulated" in dead.attributes[delivery.ERROR_MESSAGE]
    assert dead.attributes[delivery.ATTEMPTS] == str(RETRIES + 1)
    assert dead.data == {"n": 1}


async def test_once_dead_lettered_retention_trims_the_topic(
    bus: MemoryBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudevent, "encode_data", refuse_to_encode)
    await run_until_dead_lettered(bus, BinaryDestination(), new_event("t", "/tests", {"n": 1}))
    [group] = await bus.groups()
    assert group.pending == 0
    assert await bus.trim() >= 1
    assert await bus.read("default") == []


async def test_any_exception_from_the_destination_is_the_events_failure(bus: MemoryBus) -> None:
    dispatcher = await run_until_dead_lettered(
        bus, RaisingDestination(), new_event("t", "/tests", id="boom-1")
    )
    assert (dispatcher.stats.retried, dispatcher.stats.dead_lettered) == (RETRIES, 1)
    [dead] = [m.event for m in await bus.read("dead-letter")]
    assert dead.attributes[delivery.ERROR_TYPE] == "RuntimeError"
    assert dead.attributes[delivery.ERROR_MESSAGE] == "the destination broke"


async def test_a_multi_line_reason_still_makes_a_valid_dead_letter(bus: MemoryBus) -> None:
    class Traceback:
        async def deliver(self, event: Event, *, timeout: float) -> Outcome:
            raise ValueError("line one\nline two\x00")

    dispatcher = await run_until_dead_lettered(bus, Traceback(), new_event("t", "/tests"))
    assert dispatcher.stats.dead_lettered == 1
    [dead] = [m.event for m in await bus.read("dead-letter")]
    assert dead.attributes[delivery.ERROR_MESSAGE] == "line one line two "


async def test_replies_the_bus_refuses_dead_letter_the_cause(bus: MemoryBus) -> None:
    class BadReply:
        async def deliver(self, event: Event, *, timeout: float) -> Outcome:
            reply = Event({"specversion": "1.0", "id": "r", "source": "/r", "type": "t"})
            reply.attributes["note"] = "a\nb"  # what a careless destination might hand back
            return Success([reply])

    dispatcher = await run_until_dead_lettered(bus, BadReply(), new_event("t", "/tests", id="c"))
    assert (dispatcher.stats.delivered, dispatcher.stats.dead_lettered) == (0, 1)
    [dead] = [m.event for m in await bus.read("dead-letter")]
    assert dead.id == "c" and dead.attributes[delivery.ERROR_TYPE] == "InvalidEventError"
    assert "'note'" in dead.attributes[delivery.ERROR_MESSAGE]
    assert [m.event.id for m in await bus.read("default")] == ["c"]  # no reply was published
