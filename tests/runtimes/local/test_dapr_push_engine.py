"""The Dapr push path delivers through the same engine as the pull dispatcher.

So dedup, maxEventAge, the settlement decision and the delivery middleware hold
for events Dapr pushes too (before, the push path had its own retry logic and
none of these). The bus is the in-package fake; the destination records calls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cumulo.events import delivery
from cumulo.events.engine import DeliveryEngine
from cumulo.events.event import Event, new_event
from cumulo.events.middleware import Delivery
from cumulo.events.outcome import Failure, Outcome, Success
from cumulo.runtimes.local.dapr_push import RETRY, SUCCESS, push_one
from cumulo.spec.models import Metadata, Trigger, TriggerSpec
from cumulo.testing import MemoryBus


class Recording:
    """A destination that answers from a script and remembers what it got."""

    def __init__(self, *answers: Outcome):
        self.answers = list(answers)
        self.got: list[Event] = []

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        self.got.append(event)
        return self.answers.pop(0) if self.answers else Success()


class Watching:
    def __init__(self) -> None:
        self.seen: list[Delivery] = []

    def after_delivery(self, record: Delivery) -> None:
        self.seen.append(record)


def engine(
    destination: Recording, middleware: Watching | None = None, **spec: object
) -> DeliveryEngine:
    policy = {"retries": 1, "deadLetterTopic": "dlq", **spec.pop("delivery", {})}  # type: ignore[dict-item]
    trigger = Trigger(
        metadata=Metadata(name="t"), spec=TriggerSpec(function="fn", delivery=policy, **spec)
    )
    return DeliveryEngine(
        trigger, destination, timeout=5, middleware=[middleware] if middleware else []
    )


@pytest.fixture
async def bus() -> MemoryBus:
    memory = MemoryBus()
    await memory.start()
    return memory


async def test_a_duplicate_within_the_dedup_window_is_acknowledged_without_running(bus) -> None:
    destination = Recording()
    pushes = engine(destination, dedup={"key": ["source", "id"], "window": 60})
    event = new_event("order.placed", "/shop", {"n": 1}, id="e-1")
    assert await push_one(pushes, bus, event, attempt=1) == SUCCESS
    assert await push_one(pushes, bus, event, attempt=1) == SUCCESS
    assert len(destination.got) == 1
    assert (pushes.stats.delivered, pushes.stats.skipped_duplicates) == (1, 1)


async def test_an_event_older_than_max_event_age_is_dead_lettered_unrun(bus) -> None:
    destination = Recording()
    pushes = engine(destination, delivery={"maxEventAge": 60})
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    event = new_event("order.placed", "/shop", {"n": 1}, id="e-2", time=old)
    assert await push_one(pushes, bus, event, attempt=1) == SUCCESS
    assert destination.got == []
    [letter] = await bus.read("dlq")
    assert letter.event.attributes[delivery.ERROR_TYPE] == "EventExpired"


async def test_retry_then_a_dead_letter_with_the_reason_and_the_middleware_told(bus) -> None:
    watching = Watching()
    destination = Recording(Failure("ValueError", "boom"), Failure("ValueError", "boom again"))
    pushes = engine(destination, watching)
    event = new_event("order.placed", "/shop", {"n": 1}, id="e-3")
    assert await push_one(pushes, bus, event, attempt=1) == RETRY
    assert await push_one(pushes, bus, event, attempt=2) == SUCCESS  # retries: 1, spent
    [letter] = await bus.read("dlq")
    assert letter.event.attributes[delivery.ERROR_MESSAGE] == "boom again"
    assert [record.status for record in watching.seen] == ["retried", "dead-lettered"]


async def test_replies_are_published_to_the_triggers_topic(bus) -> None:
    reply = new_event("order.billed", "/fn", {"n": 1})
    pushes = engine(Recording(Success([reply])), topic="orders")
    assert await push_one(pushes, bus, new_event("order.placed", "/shop", id="e-4"), 1) == SUCCESS
    [published] = await bus.read("orders")
    assert published.event.type == "order.billed"
