"""DeliveryEngine, Seen and TriggerStats: one message through one trigger's rules.

The engine is driven directly with hand-made bus messages, so each rule
(maxEventAge, dedup, the delivery, the settlement decision, counting) is seen
on its own, without a bus loop around it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence

import pytest

from cumulo.errors import BusUnavailableError, InvalidEventError
from cumulo.events import delivery, tracing
from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack
from cumulo.events.engine import DeliveryEngine, Seen
from cumulo.events.event import Event, new_event
from cumulo.events.middleware import Delivery, DeliveryMiddleware
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.spec.models import Trigger
from tests.events.unit.conftest import Clock, ScriptedHost, make_trigger, wait_until

TRACED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def message(event: Event | None = None, *, offset: int = 1, attempt: int = 1) -> Message:
    """A leased message as a bus hands it out, published just now."""
    event = event or new_event("order.placed", "/shop", {"n": offset})
    return Message(offset, "default", event, time.time(), attempt)


def engine_for(
    host: ScriptedHost | PerEventGate,
    trigger: Trigger | None = None,
    *,
    middleware: Sequence[DeliveryMiddleware] = (),
) -> DeliveryEngine:
    return DeliveryEngine(
        trigger or make_trigger(delivery={"retries": 2}), host, timeout=7.0, middleware=middleware
    )


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Delivery] = []

    def after_delivery(self, delivery: Delivery) -> None:
        self.seen.append(delivery)


class PerEventGate:
    """A destination that holds each event until its own gate (by event id) opens."""

    def __init__(self) -> None:
        self.gates: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.started: list[str] = []

    def open(self, event_id: str) -> None:
        self.gates[event_id].set()

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        self.started.append(event.id)
        await self.gates[event.id].wait()
        return Success()


# --- TriggerStats and Seen --------------------------------------------------------------


def test_seen_holds_a_key_for_its_window() -> None:
    seen = Seen(window=10.0)
    assert not seen.contains(("src", "1"), now=100.0)
    seen.add(("src", "1"), now=100.0)
    assert seen.contains(("src", "1"), now=105.0)
    assert seen.contains(("src", "1"), now=110.0)  # exactly the window: still seen
    assert not seen.contains(("src", "2"), now=105.0)
    assert not seen.contains(("src", "1"), now=110.5)


def test_seen_forgets_expired_keys_oldest_first() -> None:
    seen = Seen(window=10.0)
    for n, at in enumerate((0.0, 5.0, 9.0)):
        seen.add((str(n),), now=at)
    assert not seen.contains(("x",), now=16.0)  # 0 and 5 are past the window
    assert list(seen.keys) == [("2",)]


def test_seeing_a_key_again_renews_it() -> None:
    seen = Seen(window=10.0)
    seen.add(("a",), now=0.0)
    seen.add(("b",), now=1.0)
    seen.add(("a",), now=8.0)
    assert list(seen.keys) == [("b",), ("a",)]
    assert seen.contains(("a",), now=15.0)  # renewed at 8
    assert not seen.contains(("b",), now=15.0)


def test_seen_keys_default_to_an_empty_ordered_dict_per_instance() -> None:
    first, second = Seen(1.0), Seen(1.0)
    first.add(("k",), now=0.0)
    assert isinstance(second.keys, OrderedDict) and not second.keys


# --- attempt: the delivery and its decision -----------------------------------------------


async def test_a_success_is_a_record_with_an_ack() -> None:
    host = ScriptedHost()
    engine = engine_for(host, make_trigger("billing", function="bill"))
    given = message(offset=4)
    before = time.time()
    record = await engine.attempt(given)
    assert (record.trigger, record.function, record.message) == ("billing", "bill", given)
    assert record.outcome == Success()
    assert record.settlement == Ack(4, emit=[])
    assert record.invoked is not None and before <= record.started <= record.invoked
    assert record.duration is not None and record.duration >= 0
    assert record.settled is None  # not carried out yet
    assert [timeout for _, timeout in host.calls] == [7.0]


async def test_an_untraced_event_is_delivered_in_a_new_trace() -> None:
    host = ScriptedHost()
    plain = message()
    record = await engine_for(host).attempt(plain)
    [got] = host.events
    assert got is record.event
    assert tracing.trace_id_of(got) is not None
    assert got.id == plain.event.id and tracing.TRACEPARENT not in plain.event.attributes


async def test_a_traced_event_is_delivered_as_it_is() -> None:
    host = ScriptedHost()
    traced = message(new_event("order.placed", "/shop", traceparent=TRACED))
    record = await engine_for(host).attempt(traced)
    assert record.event is traced.event
    assert host.events == [traced.event]


async def test_replies_are_decided_into_the_ack_in_the_events_trace() -> None:
    reply = new_event("order.billed", "/fn")
    engine = engine_for(ScriptedHost(Success([reply])), make_trigger(topic="shop"))
    record = await engine.attempt(message(new_event("order.placed", "/shop", traceparent=TRACED)))
    assert isinstance(record.settlement, Ack)
    [(topic, sent)] = record.settlement.emit
    assert topic == "shop" and sent.id == reply.id
    assert tracing.trace_id_of(sent) == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_retryable_failure_is_a_nack_after_the_backoff() -> None:
    trigger = make_trigger(delivery={"retries": 2, "backoffDelay": "3s"})
    engine = engine_for(ScriptedHost(Failure("ValueError", "bad")), trigger)
    record = await engine.attempt(message(attempt=2))
    assert record.settlement == Nack(1, 6.0, "ValueError: bad")  # 3 s * 2 ** (2 - 1)


async def test_the_functions_own_delay_wins_over_the_backoff() -> None:
    engine = engine_for(ScriptedHost(RetryLater("Retry", "busy", 42.0)))
    record = await engine.attempt(message())
    assert record.settlement == Nack(1, 42.0, "Retry: busy")


async def test_an_exception_from_the_destination_is_the_events_own_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = engine_for(ScriptedHost(ValueError("cannot encode it")))
    with caplog.at_level(logging.WARNING, logger="cumulo.dispatcher"):
        record = await engine.attempt(message(offset=9))
    assert record.outcome == Failure("ValueError", "cannot encode it")
    assert isinstance(record.settlement, Nack)
    assert any("offset 9 could not be delivered" in r.getMessage() for r in caplog.records)


async def test_an_exception_without_a_message_is_named_by_its_repr() -> None:
    engine = engine_for(ScriptedHost(RuntimeError()))
    record = await engine.attempt(message())
    assert record.outcome == Failure("RuntimeError", "RuntimeError()")


async def test_a_bus_error_leaves_the_delivery_undecided(caplog: pytest.LogCaptureFixture) -> None:
    engine = engine_for(ScriptedHost(BusUnavailableError("reply bus down")))
    with caplog.at_level(logging.ERROR, logger="cumulo.dispatcher"):
        record = await engine.attempt(message(offset=3))
    assert record.settlement is None and record.outcome is None
    assert any("offset 3: the bus failed" in r.getMessage() for r in caplog.records)


async def test_a_failure_after_the_last_retry_is_a_dead_letter() -> None:
    trigger = make_trigger(delivery={"retries": 1, "deadLetterTopic": "dlq"})
    engine = engine_for(ScriptedHost(Failure("ValueError", "bad")), trigger)
    record = await engine.attempt(message(attempt=2))
    assert isinstance(record.settlement, DeadLetter) and record.settlement.topic == "dlq"
    assert record.settlement.event.attributes[delivery.ATTEMPTS] == "2"


# --- maxEventAge and dedup --------------------------------------------------------------------


async def test_an_expired_event_is_dead_lettered_and_not_delivered(clock: Clock) -> None:
    host = ScriptedHost()
    engine = engine_for(host, make_trigger(delivery={"maxEventAge": 5}))
    clock.ahead = 6.0
    record = await engine.attempt(message())
    assert isinstance(record.settlement, DeadLetter)
    assert record.settlement.event.attributes[delivery.ERROR_TYPE] == "EventExpired"
    assert host.calls == [] and record.invoked is None and record.outcome is None


async def test_age_is_checked_before_dedup(clock: Clock) -> None:
    """An old duplicate is dead-lettered as too old, not acknowledged as a duplicate."""
    host = ScriptedHost()
    engine = engine_for(host, make_trigger(dedup={}, delivery={"maxEventAge": 5}))
    event = new_event("t", "/s")
    assert isinstance((await engine.attempt(message(event))).settlement, Ack)
    clock.ahead = 6.0
    record = await engine.attempt(message(event, offset=2))
    assert isinstance(record.settlement, DeadLetter)


async def test_a_duplicate_key_is_acked_without_delivering() -> None:
    host = ScriptedHost()
    engine = engine_for(host, make_trigger(dedup={}))
    event = new_event("t", "/s")
    await engine.attempt(message(event, offset=1))
    again = await engine.attempt(message(event, offset=2))
    assert again.settlement == Ack(2)
    assert again.outcome is None and again.invoked is None
    assert len(host.calls) == 1


async def test_without_dedup_every_copy_is_delivered() -> None:
    host = ScriptedHost()
    engine = engine_for(host)
    event = new_event("t", "/s")
    for offset in (1, 2):
        await engine.attempt(message(event, offset=offset))
    assert len(host.calls) == 2


async def test_only_a_success_marks_the_key_as_delivered() -> None:
    host = ScriptedHost(Failure("ValueError", "x"), RetryLater("Retry", "y"))
    engine = engine_for(host, make_trigger(dedup={}))
    event = new_event("t", "/s")
    for attempt in (1, 2, 3):
        await engine.attempt(message(event, attempt=attempt))
    assert len(host.calls) == 3
    assert (await engine.attempt(message(event, offset=2))).outcome is None  # now a duplicate


async def test_a_key_is_delivered_again_once_the_window_passes(clock: Clock) -> None:
    host = ScriptedHost()
    engine = engine_for(host, make_trigger(dedup={"window": 10}))
    event = new_event("t", "/s")
    await engine.attempt(message(event))
    clock.ahead = 9.0
    assert (await engine.attempt(message(event, offset=2))).outcome is None
    clock.ahead = 11.0
    assert (await engine.attempt(message(event, offset=3))).outcome == Success()


async def test_the_window_counts_from_when_the_first_delivery_started(clock: Clock) -> None:
    """A long first delivery: its key expires ``window`` after it began, not after it ended."""
    gate = PerEventGate()
    engine = engine_for(gate, make_trigger(dedup={"window": 10}))
    event = new_event("t", "/s", id="a")
    first = asyncio.create_task(engine.attempt(message(event)))
    await wait_until(lambda: gate.started == ["a"])
    clock.ahead = 55.0
    gate.open("a")
    await first
    clock.ahead = 58.0
    assert (await engine.attempt(message(event, offset=2))).outcome == Success()


async def test_a_keys_window_does_not_depend_on_other_keys_deliveries(clock: Clock) -> None:
    """As in the test above, but another event's delivery finishes while the first is held."""
    gate = PerEventGate()
    engine = engine_for(gate, make_trigger(dedup={"window": 10}))
    slow = new_event("t", "/s", id="a")
    first = asyncio.create_task(engine.attempt(message(slow)))
    await wait_until(lambda: gate.started == ["a"])
    clock.ahead = 50.0
    gate.open("b")
    await engine.attempt(message(new_event("t", "/s", id="b"), offset=2))
    clock.ahead = 55.0
    gate.open("a")
    await first
    clock.ahead = 58.0
    assert (await engine.attempt(message(slow, offset=3))).outcome == Success()


async def test_the_dedup_key_is_made_of_the_named_attributes() -> None:
    host = ScriptedHost()
    engine = engine_for(host, make_trigger(dedup={"key": ["type", "subject"]}))
    await engine.attempt(message(new_event("a", "/1", subject="s1")))
    same = await engine.attempt(message(new_event("a", "/2", subject="s1"), offset=2))
    other_subject = await engine.attempt(message(new_event("a", "/1", subject="s2"), offset=3))
    other_type = await engine.attempt(message(new_event("b", "/1", subject="s1"), offset=4))
    assert same.outcome is None
    assert other_subject.outcome == Success() and other_type.outcome == Success()


# --- refused, finished ---------------------------------------------------------------------------


async def test_refused_turns_the_settlement_into_a_dead_letter_saying_why() -> None:
    trigger = make_trigger("billing", delivery={"deadLetterTopic": "dlq"})
    engine = engine_for(ScriptedHost(Success([new_event("r", "/fn")])), trigger)
    record = await engine.attempt(message(offset=5))
    engine.refused(record, InvalidEventError(["attribute 'note' holds a control character"]))
    letter = record.settlement
    assert isinstance(letter, DeadLetter) and (letter.offset, letter.topic) == (5, "dlq")
    reasons = letter.event.attributes
    assert reasons[delivery.ERROR_TYPE] == "InvalidEventError"
    assert reasons[delivery.ERROR_MESSAGE] == (
        "the bus refused what settling it publishes: attribute 'note' holds a control character"
    )
    assert reasons[delivery.TRIGGER] == "billing"


async def test_finished_counts_each_kind_of_settlement(clock: Clock) -> None:
    trigger = make_trigger(dedup={}, delivery={"retries": 1, "maxEventAge": 60})
    host = ScriptedHost(Success(), Failure("E", "retry me"), Failure("E", "give up"))
    engine = engine_for(host, trigger)
    first = new_event("t", "/s")
    records = [
        await engine.attempt(message(first)),  # delivered
        await engine.attempt(message(first, offset=2)),  # a duplicate: skipped
        await engine.attempt(message(offset=3, attempt=1)),  # retried
        await engine.attempt(message(offset=4, attempt=2)),  # dead-lettered
    ]
    clock.ahead = 61.0
    records.append(await engine.attempt(message(offset=5)))  # too old: dead-lettered
    for record in records:
        engine.finished(record)
    stats = engine.stats
    assert (stats.delivered, stats.skipped_duplicates, stats.retried, stats.dead_lettered) == (
        1,
        1,
        1,
        2,
    )
    assert [record.status for record in records] == [
        "delivered",
        "skipped",
        "retried",
        "dead-lettered",
        "dead-lettered",
    ]


async def test_finished_stamps_the_record_and_hands_it_to_each_middleware_in_order() -> None:
    order: list[str] = []

    class Named(Recorder):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def after_delivery(self, delivery: Delivery) -> None:
            order.append(self.name)
            super().after_delivery(delivery)

    first, second = Named("first"), Named("second")
    engine = engine_for(ScriptedHost(), middleware=[first, second])
    assert engine.middleware == (first, second)
    record = await engine.attempt(message())
    engine.finished(record)
    assert record.settled is not None and record.settled >= record.started
    assert first.seen == [record] and second.seen == [record]
    assert order == ["first", "second"]


async def test_finished_logs_a_dead_letter_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = engine_for(ScriptedHost(Failure("KeyError", "customer 7", permanent=True)))
    record = await engine.attempt(message())
    with caplog.at_level(logging.WARNING, logger="cumulo.dispatcher"):
        engine.finished(record)
    [warning] = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert "after 1 attempt(s): KeyError: customer 7" in warning
