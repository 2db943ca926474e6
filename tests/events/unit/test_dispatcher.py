"""TriggerDispatcher: joining, the fetch/deliver/settle loop, its bounds, and what the bus fails at.

Each test runs a real dispatcher against the in-package MemoryBus (with faults
injected where a test needs a broker to fail) and a scripted function host.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from cumulo.errors import BusError, BusUnavailableError, InvalidEventError
from cumulo.events import delivery, tracing
from cumulo.events.bus.base import Ack, DeadLetter, GroupInfo
from cumulo.events.dispatcher import LEASE_MARGIN_SECONDS, TriggerDispatcher
from cumulo.events.event import Event, new_event
from cumulo.events.middleware import Delivery, DeliveryMiddleware
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.spec.models import Trigger
from cumulo.testing import make_events
from tests.events.unit.conftest import (
    REAL_SLEEP,
    Clock,
    FaultyBus,
    ScriptedHost,
    loop_turns,
    make_trigger,
    running,
    wait_until,
)

FAST_RETRIES = {"retries": 2, "backoffDelay": 0.01, "maxBackoff": 0.02}


def dispatcher_for(
    bus: FaultyBus,
    host: ScriptedHost,
    trigger: Trigger | None = None,
    *,
    concurrency: int = 1,
    function_timeout: float = 5.0,
    middleware: tuple[DeliveryMiddleware, ...] = (),
) -> TriggerDispatcher:
    return TriggerDispatcher(
        bus,
        trigger or make_trigger(delivery=FAST_RETRIES),
        host,
        function_timeout=function_timeout,
        concurrency=concurrency,
        middleware=middleware,
    )


class Recorder:
    """A middleware that keeps every delivery it is handed."""

    def __init__(self) -> None:
        self.seen: list[Delivery] = []

    def after_delivery(self, delivery: Delivery) -> None:
        self.seen.append(delivery)


class Broken:
    def after_delivery(self, delivery: Delivery) -> None:
        raise RuntimeError("metrics backend down")


async def only_group(bus: FaultyBus) -> GroupInfo:
    [group] = await bus.groups()
    return group


async def group_when(bus: FaultyBus, holds: Callable[[GroupInfo], bool]) -> GroupInfo:
    """The bus's only group, once ``holds`` is true of it (bounded)."""
    async with asyncio.timeout(2):
        while not holds(group := await only_group(bus)):
            await REAL_SLEEP(0.002)
    return group


# --- joining -----------------------------------------------------------------------


async def test_run_joins_the_triggers_group_on_its_topic(bus: FaultyBus) -> None:
    """The group is ``trigger/<name>``, on the trigger's topic, and ``joined`` says it is there."""
    dispatcher = dispatcher_for(bus, ScriptedHost(), make_trigger("billing", topic="shop"))
    assert not dispatcher.joined.is_set()
    async with running(dispatcher):
        group = await only_group(bus)
        assert (group.name, group.topic) == ("trigger/billing", "shop")
        assert dispatcher.group == "trigger/billing"


async def test_events_published_before_joining_are_not_delivered(bus: FaultyBus) -> None:
    """A new group starts at the end of its topic (``latest``)."""
    await bus.publish("default", make_events(2))
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host)
    async with running(dispatcher):
        [fresh] = make_events(1)
        await bus.publish("default", [fresh])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
        await loop_turns()
    assert [event.id for event in host.events] == [fresh.id]


async def test_joining_a_broker_that_is_down_backs_off_doubling_to_a_cap(
    bus: FaultyBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each refused subscribe waits twice as long as the last, up to MAX_RECONNECT_SECONDS."""
    bus.fail("subscribe", *[BusUnavailableError("connection refused")] * 7)
    dispatcher = dispatcher_for(bus, ScriptedHost())
    pauses: list[float] = []
    joined_while_pausing: list[bool] = []

    async def watched_sleep(seconds: float) -> None:
        pauses.append(seconds)
        joined_while_pausing.append(dispatcher.joined.is_set())
        await REAL_SLEEP(0)

    monkeypatch.setattr(asyncio, "sleep", watched_sleep)
    with caplog.at_level(logging.WARNING, logger="cumulo.dispatcher"):
        async with running(dispatcher):
            assert await bus.groups()  # joined in the end
    assert pauses[:7] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert not any(joined_while_pausing[:7])
    assert sum("cannot subscribe yet" in r.getMessage() for r in caplog.records) == 7


async def test_an_error_that_is_not_the_bus_ends_run_but_still_sets_joined(
    bus: FaultyBus,
) -> None:
    """Whoever waits on ``joined`` is not left hanging when joining fails for good."""
    bus.fail("subscribe", ValueError("bad group name"))
    dispatcher = dispatcher_for(bus, ScriptedHost())
    with pytest.raises(ValueError, match="bad group name"):
        await dispatcher.run()
    assert dispatcher.joined.is_set()
    assert await bus.groups() == []


# --- the loop ------------------------------------------------------------------------


async def test_each_event_is_delivered_once_in_order_and_acked(bus: FaultyBus) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host)
    events = make_events(3)
    async with running(dispatcher):
        await bus.publish("default", events)
        await wait_until(lambda: dispatcher.stats.delivered == 3)
        group = await only_group(bus)
    assert [event.id for event in host.events] == [event.id for event in events]
    assert [event.data for event in host.events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert (group.pending, group.backlog) == (0, 0)
    stats = dispatcher.stats
    assert (stats.retried, stats.dead_lettered, stats.skipped_duplicates) == (0, 0, 0)
    assert dispatcher.stats is dispatcher.engine.stats


async def test_the_function_gets_the_event_in_a_trace(bus: FaultyBus) -> None:
    """An event published without trace context reaches the function with a new trace."""
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host)
    plain = new_event("order.placed", "/shop", {"n": 1})
    assert tracing.TRACEPARENT not in plain.attributes
    async with running(dispatcher):
        await bus.publish("default", [plain])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    [got] = host.events
    assert (got.id, got.data) == (plain.id, plain.data)
    assert tracing.trace_id_of(got) is not None


async def test_the_trigger_filter_decides_what_reaches_the_function(bus: FaultyBus) -> None:
    trigger = make_trigger(filters=[{"exact": {"type": "order.placed"}}])
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, trigger)
    wanted = new_event("order.placed", "/shop")
    async with running(dispatcher):
        await bus.publish("default", [new_event("order.viewed", "/shop"), wanted])
        await bus.publish("default", [new_event("order.viewed", "/shop")])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
        group = await group_when(bus, lambda g: g.backlog == 0 and g.pending == 0)
    assert [event.id for event in host.events] == [wanted.id]
    assert group.cursor == 3  # the others are skipped for good


async def test_replies_are_published_on_the_triggers_topic_in_the_causes_trace(
    bus: FaultyBus,
) -> None:
    trigger = make_trigger(topic="shop", filters=[{"exact": {"type": "order.placed"}}])
    reply = new_event("order.billed", "/fn", {"total": 3})
    host = ScriptedHost(Success([reply]))
    dispatcher = dispatcher_for(bus, host, trigger)
    cause = new_event("order.placed", "/shop", {"n": 1})
    async with running(dispatcher):
        await bus.publish("shop", [cause])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    on_topic = [message.event for message in await bus.read("shop")]
    assert [event.type for event in on_topic] == ["order.placed", "order.billed"]
    published = on_topic[1]
    assert (published.id, published.data) == (reply.id, {"total": 3})
    assert tracing.trace_id_of(published) == tracing.trace_id_of(host.events[0])
    assert len(host.calls) == 1  # the reply does not pass the trigger's filter


async def test_a_failure_is_retried_after_its_backoff_then_delivered(bus: FaultyBus) -> None:
    host = ScriptedHost(Failure("ValueError", "flaky"), RetryLater("Retry", "not yet", 0.0))
    dispatcher = dispatcher_for(bus, host)
    [event] = make_events(1)
    async with running(dispatcher):
        await bus.publish("default", [event])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    assert [got.id for got in host.events] == [event.id] * 3
    assert (dispatcher.stats.retried, dispatcher.stats.dead_lettered) == (2, 0)


async def test_exhausted_retries_dead_letter_the_event_saying_why(bus: FaultyBus) -> None:
    trigger = make_trigger(
        "billing",
        function="bill",
        delivery={**FAST_RETRIES, "retries": 1, "deadLetterTopic": "billing-dlq"},
    )
    host = ScriptedHost(default=Failure("ValueError", "no such customer"))
    dispatcher = dispatcher_for(bus, host, trigger)
    [event] = make_events(1)
    async with running(dispatcher):
        await bus.publish("default", [event])
        await wait_until(lambda: dispatcher.stats.dead_lettered == 1)
        group = await only_group(bus)
    assert len(host.calls) == 2  # the first attempt and one retry
    assert dispatcher.stats.retried == 1 and dispatcher.stats.delivered == 0
    [letter] = [message.event for message in await bus.read("billing-dlq")]
    assert (letter.id, letter.data) == (event.id, event.data)
    reasons = letter.attributes
    assert reasons[delivery.ERROR_TYPE] == "ValueError"
    assert reasons[delivery.ERROR_MESSAGE] == "no such customer"
    assert reasons[delivery.ATTEMPTS] == "2"
    assert (reasons[delivery.TRIGGER], reasons[delivery.DESTINATION]) == ("billing", "bill")
    assert group.pending == 0


async def test_a_permanent_failure_skips_the_retries(bus: FaultyBus) -> None:
    host = ScriptedHost(Failure("PermanentError", "malformed order", permanent=True))
    dispatcher = dispatcher_for(bus, host)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: dispatcher.stats.dead_lettered == 1)
    assert len(host.calls) == 1 and dispatcher.stats.retried == 0
    [letter] = [message.event for message in await bus.read("dead-letter")]
    assert letter.attributes[delivery.ATTEMPTS] == "1"


async def test_a_delivery_that_times_out_is_retried_then_dead_lettered_as_a_timeout(
    bus: FaultyBus,
) -> None:
    """A host that gives up after the timeout (asyncio.wait_for) fails the attempt."""
    host = ScriptedHost(TimeoutError(), TimeoutError(), TimeoutError())
    dispatcher = dispatcher_for(bus, host)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: dispatcher.stats.dead_lettered == 1)
    assert len(host.calls) == 3
    [letter] = [message.event for message in await bus.read("dead-letter")]
    assert letter.attributes[delivery.ERROR_TYPE] == "TimeoutError"
    assert letter.attributes[delivery.ERROR_MESSAGE] == "TimeoutError()"


@pytest.mark.parametrize(("per_trigger", "expected"), [("2s", 2.0), (None, 30.0)])
async def test_the_timeout_is_the_triggers_else_the_functions_and_sizes_the_lease(
    bus: FaultyBus, per_trigger: str | None, expected: float
) -> None:
    policy = {**FAST_RETRIES, **({"timeout": per_trigger} if per_trigger else {})}
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, make_trigger(delivery=policy), function_timeout=30)
    assert dispatcher.timeout == expected
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    assert [timeout for _, timeout in host.calls] == [expected]
    leases = {call["lease"] for call in bus.calls["fetch"]}
    assert leases == {expected + LEASE_MARGIN_SECONDS}


# --- concurrency ---------------------------------------------------------------------


async def test_no_more_than_concurrency_deliveries_run_at_once(bus: FaultyBus) -> None:
    host = ScriptedHost()
    host.hold()
    dispatcher = dispatcher_for(bus, host, concurrency=2)
    async with running(dispatcher):
        await bus.publish("default", make_events(5))
        await wait_until(lambda: host.running == 2)
        await loop_turns()  # a loop that ignored the bound would lease more by now
        assert (host.running, dispatcher.inflight, len(host.calls)) == (2, 2, 2)
        group = await only_group(bus)
        assert (group.pending, group.backlog) == (2, 3)
        host.release()
        await wait_until(lambda: dispatcher.stats.delivered == 5)
    assert host.most_running == 2
    assert dispatcher.inflight == 0


async def test_fetches_ask_only_for_the_free_slots(bus: FaultyBus) -> None:
    host = ScriptedHost()
    host.hold()
    dispatcher = dispatcher_for(bus, host, concurrency=3)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: host.running == 1)
        await bus.publish("default", make_events(5))
        await wait_until(lambda: host.running == 3)
        await loop_turns()
        limits = [call["limit"] for call in bus.calls["fetch"]]
        group = await only_group(bus)
    assert limits[0] == 3 and limits[-1] == 2
    assert max(limits) == 3 and min(limits) >= 1
    assert (group.pending, group.backlog) == (3, 3)


async def test_a_freed_slot_is_used_without_waiting_for_the_next_poll(bus: FaultyBus) -> None:
    """With every slot busy the loop waits for a delivery to finish, not for a poll tick."""
    host = ScriptedHost()
    host.hold()
    dispatcher = dispatcher_for(bus, host, concurrency=1)
    async with running(dispatcher):
        await bus.publish("default", make_events(2))
        await wait_until(lambda: host.running == 1)
        host.release()
        await wait_until(lambda: dispatcher.stats.delivered == 2, timeout=0.5)  # poll: 1 s


# --- draining and stopping -------------------------------------------------------------


async def test_drain_waits_for_in_flight_deliveries_up_to_its_bound(bus: FaultyBus) -> None:
    host = ScriptedHost()
    host.hold()
    dispatcher = dispatcher_for(bus, host)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: host.running == 1)
        async with asyncio.timeout(1):
            await dispatcher.drain(0.05)  # the delivery is still held: drain gives up
        assert dispatcher.inflight == 1 and dispatcher.stats.delivered == 0
        host.release()
        await dispatcher.drain(2.0)
        assert dispatcher.inflight == 0 and dispatcher.stats.delivered == 1


async def test_drain_with_nothing_in_flight_returns_at_once(bus: FaultyBus) -> None:
    dispatcher = dispatcher_for(bus, ScriptedHost())
    async with asyncio.timeout(0.5):
        await dispatcher.drain(60.0)


async def test_stopping_as_the_platform_does_lets_in_flight_deliveries_settle(
    bus: FaultyBus,
) -> None:
    """Cancelling ``run`` does not cancel what it started; ``drain`` then sees it settled."""
    host = ScriptedHost()
    host.hold()
    dispatcher = dispatcher_for(bus, host)
    task = asyncio.create_task(dispatcher.run())
    await dispatcher.joined.wait()
    await bus.publish("default", make_events(1))
    await wait_until(lambda: host.running == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dispatcher.inflight == 1
    host.release()
    await dispatcher.drain(2.0)
    assert dispatcher.stats.delivered == 1
    assert (await only_group(bus)).pending == 0


# --- dedup and maxEventAge -------------------------------------------------------------


async def test_dedup_acks_a_key_already_delivered_without_running_it(bus: FaultyBus) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, make_trigger(dedup={}))  # key: source and id
    [event] = make_events(1)
    async with running(dispatcher):
        await bus.publish("default", [event])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
        await bus.publish("default", [event], dedup=False)  # the bus lets it through again
        await wait_until(lambda: dispatcher.stats.skipped_duplicates == 1)
        group = await only_group(bus)
    assert len(host.calls) == 1
    assert group.pending == 0  # acknowledged


async def test_the_dedup_key_is_the_attributes_the_trigger_names(bus: FaultyBus) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, make_trigger(dedup={"key": ["type", "subject"]}))
    first = new_event("model.trained", "/a", subject="m1")
    same_key = new_event("model.trained", "/b", subject="m1")  # another id and source
    other = new_event("model.trained", "/a", subject="m2")
    async with running(dispatcher):
        await bus.publish("default", [first, same_key, other])
        await wait_until(
            lambda: dispatcher.stats.delivered + dispatcher.stats.skipped_duplicates == 3
        )
    assert [event.id for event in host.events] == [first.id, other.id]
    assert dispatcher.stats.skipped_duplicates == 1


async def test_a_failed_attempt_does_not_mark_its_key_as_seen(bus: FaultyBus) -> None:
    host = ScriptedHost(Failure("ValueError", "flaky"))
    trigger = make_trigger(dedup={}, delivery=FAST_RETRIES)
    dispatcher = dispatcher_for(bus, host, trigger)
    [event] = make_events(1)
    async with running(dispatcher):
        await bus.publish("default", [event])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    assert len(host.calls) == 2  # the retry ran: it was no duplicate
    assert dispatcher.stats.skipped_duplicates == 0


async def test_a_key_is_forgotten_after_the_dedup_window(bus: FaultyBus, clock: Clock) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, make_trigger(dedup={"window": "1m"}))
    [event] = make_events(1)
    async with running(dispatcher):
        await bus.publish("default", [event])
        await wait_until(lambda: dispatcher.stats.delivered == 1)
        clock.ahead = 61.0
        await bus.publish("default", [event], dedup=False)
        await wait_until(lambda: dispatcher.stats.delivered == 2)
    assert dispatcher.stats.skipped_duplicates == 0


async def test_an_event_older_than_max_event_age_is_dead_lettered_without_running(
    bus: FaultyBus, clock: Clock
) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, make_trigger(delivery={"maxEventAge": "1m"}))
    clock.ahead = 120.0  # the event was published two minutes before the engine sees it
    [event] = make_events(1)
    async with running(dispatcher):
        await bus.publish("default", [event])
        await wait_until(lambda: dispatcher.stats.dead_lettered == 1)
    assert host.calls == []
    [letter] = [message.event for message in await bus.read("dead-letter")]
    assert letter.id == event.id
    assert letter.attributes[delivery.ERROR_TYPE] == "EventExpired"
    assert letter.attributes[delivery.ERROR_MESSAGE] == "older than maxEventAge"


async def test_an_event_within_max_event_age_runs(bus: FaultyBus, clock: Clock) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, make_trigger(delivery={"maxEventAge": "1m"}))
    clock.ahead = 30.0
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    assert len(host.calls) == 1


# --- what the bus fails at -------------------------------------------------------------


@pytest.mark.usefixtures("fast_polls")
async def test_a_failed_fetch_is_logged_and_fetching_goes_on(
    bus: FaultyBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.fail("fetch", BusUnavailableError("broker restarting"), BusError("still restarting"))
    dispatcher = dispatcher_for(bus, ScriptedHost())
    with caplog.at_level(logging.WARNING, logger="cumulo.dispatcher"):
        async with running(dispatcher):
            await bus.publish("default", make_events(1))
            await wait_until(lambda: dispatcher.stats.delivered == 1)
    failures = [r.getMessage() for r in caplog.records if "fetching failed" in r.getMessage()]
    assert len(failures) == 2 and "broker restarting" in failures[0]


@pytest.mark.usefixtures("fast_polls")
async def test_a_failed_wait_falls_back_to_polling(bus: FaultyBus) -> None:
    bus.fail("wait", *[BusError("no notifications")] * 3)
    dispatcher = dispatcher_for(bus, ScriptedHost())
    async with running(dispatcher):
        await wait_until(lambda: not bus.faults["wait"])
        await bus.publish("default", make_events(1))
        await wait_until(lambda: dispatcher.stats.delivered == 1)


@pytest.mark.usefixtures("fast_polls")
async def test_a_settlement_the_bus_fails_is_retried_with_the_same_outcome(
    bus: FaultyBus,
) -> None:
    """The function is not run again because the bus hiccuped while settling."""
    bus.fail("settle", BusUnavailableError("gone"), BusUnavailableError("still gone"))
    reply = new_event("order.billed", "/fn")
    host = ScriptedHost(Success([reply]))
    trigger = make_trigger(filters=[{"exact": {"type": "com.example.test"}}])
    dispatcher = dispatcher_for(bus, host, trigger)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: dispatcher.stats.delivered == 1)
    assert len(host.calls) == 1
    attempts = bus.calls["settle"]
    assert len(attempts) == 3
    assert attempts[0]["settlements"] == attempts[2]["settlements"]
    assert [m.event.id for m in await bus.read("default")].count(reply.id) == 1


async def test_settling_that_fails_for_another_reason_leaves_the_event_to_its_lease(
    bus: FaultyBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.fail("settle", RuntimeError("disk on fire"))
    recorder = Recorder()
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host, middleware=(recorder,))
    with caplog.at_level(logging.ERROR, logger="cumulo.dispatcher"):
        async with running(dispatcher):
            await bus.publish("default", make_events(1))
            await wait_until(lambda: bus.calls["settle"] != [] and dispatcher.inflight == 0)
            group = await only_group(bus)
    assert group.pending == 1  # still leased: the lease brings it back
    assert dispatcher.stats.delivered == 0 and recorder.seen == []
    assert any("settling offset 1 failed" in r.getMessage() for r in caplog.records)


async def test_a_dead_letter_the_bus_refuses_is_left_to_the_lease(
    bus: FaultyBus, caplog: pytest.LogCaptureFixture
) -> None:
    bus.fail("settle", InvalidEventError(["attribute 'x' is bad"]))
    host = ScriptedHost(Failure("PermanentError", "no", permanent=True))
    dispatcher = dispatcher_for(bus, host)
    with caplog.at_level(logging.ERROR, logger="cumulo.dispatcher"):
        async with running(dispatcher):
            await bus.publish("default", make_events(1))
            await wait_until(lambda: bus.calls["settle"] != [] and dispatcher.inflight == 0)
            group = await only_group(bus)
    [only] = bus.calls["settle"]
    assert isinstance(only["settlements"][0], DeadLetter)
    assert group.pending == 1 and dispatcher.stats.dead_lettered == 0
    assert await bus.read("dead-letter") == []
    assert any("dead letter refused" in r.getMessage() for r in caplog.records)


async def test_refused_replies_become_a_dead_letter_and_a_refused_one_is_left_alone(
    bus: FaultyBus,
) -> None:
    """Ack refused → dead letter instead; that refused too → nothing settled, nothing counted."""
    bus.fail("settle", InvalidEventError(["reply refused"]), InvalidEventError(["refused too"]))
    host = ScriptedHost(Success([new_event("reply", "/fn")]))
    dispatcher = dispatcher_for(bus, host)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: len(bus.calls["settle"]) == 2 and dispatcher.inflight == 0)
        group = await only_group(bus)
    first, second = (call["settlements"][0] for call in bus.calls["settle"])
    assert isinstance(first, Ack) and isinstance(second, DeadLetter)
    assert "reply refused" in second.event.attributes[delivery.ERROR_MESSAGE]
    assert group.pending == 1
    stats = dispatcher.stats
    assert (stats.delivered, stats.dead_lettered) == (0, 0)


async def test_a_bus_error_inside_the_host_leaves_the_event_unsettled(bus: FaultyBus) -> None:
    host = ScriptedHost(BusUnavailableError("reply bus down"))
    dispatcher = dispatcher_for(bus, host)
    async with running(dispatcher):
        await bus.publish("default", make_events(1))
        await wait_until(lambda: len(host.calls) == 1 and dispatcher.inflight == 0)
        group = await only_group(bus)
    assert bus.calls["settle"] == []
    assert group.pending == 1
    stats = dispatcher.stats
    assert (stats.delivered, stats.retried, stats.dead_lettered) == (0, 0, 0)


# --- deliver_one (a job pod) -------------------------------------------------------------


async def test_deliver_one_is_none_when_nothing_waits(bus: FaultyBus) -> None:
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host)
    assert await dispatcher.deliver_one() is None
    assert host.calls == []
    assert (await only_group(bus)).name == "trigger/orders"


async def test_deliver_one_from_the_earliest_delivers_and_settles_one_event(
    bus: FaultyBus,
) -> None:
    events = make_events(2)
    await bus.publish("default", events)
    host = ScriptedHost()
    dispatcher = dispatcher_for(bus, host)
    assert await dispatcher.deliver_one(start="earliest") == Success()
    assert [event.id for event in host.events] == [events[0].id]
    group = await only_group(bus)
    assert (group.pending, group.backlog) == (0, 1)
    assert dispatcher.stats.delivered == 1


async def test_deliver_one_from_the_latest_ignores_what_came_before(bus: FaultyBus) -> None:
    await bus.publish("default", make_events(2))
    host = ScriptedHost()
    assert await dispatcher_for(bus, host).deliver_one() is None
    assert host.calls == []


async def test_deliver_one_reports_a_failure_and_leaves_it_to_retry(bus: FaultyBus) -> None:
    await bus.publish("default", make_events(1))
    failure = Failure("ValueError", "bad row")
    dispatcher = dispatcher_for(bus, ScriptedHost(failure))
    assert await dispatcher.deliver_one(start="earliest") == failure
    assert (await only_group(bus)).pending == 1  # nacked: it comes back after the backoff
    assert dispatcher.stats.retried == 1


# --- middleware ----------------------------------------------------------------------------


async def test_middleware_sees_every_settled_delivery_in_order(bus: FaultyBus) -> None:
    first, second = Recorder(), Recorder()
    host = ScriptedHost(Success(), Failure("PermanentError", "no", permanent=True))
    trigger = make_trigger("billing", function="bill")
    dispatcher = dispatcher_for(bus, host, trigger, middleware=(first, Broken(), second))
    events = make_events(2)
    async with running(dispatcher):
        await bus.publish("default", events)
        await wait_until(lambda: len(second.seen) == 2)
    assert first.seen == second.seen  # the broken one in between cost nothing
    assert [d.status for d in first.seen] == ["delivered", "dead-lettered"]
    assert [d.message.event.id for d in first.seen] == [event.id for event in events]
    for record in first.seen:
        assert (record.trigger, record.function) == ("billing", "bill")
        assert record.invoked is not None and record.settled is not None
        assert record.started <= record.invoked <= record.settled
        assert record.duration is not None and record.duration >= 0


# --- a picky filter -----------------------------------------------------------------


async def test_a_backlog_of_filtered_out_events_does_not_delay_a_match(bus: FaultyBus) -> None:
    trigger = make_trigger(filters=[{"exact": {"type": "wanted"}}])
    dispatcher = dispatcher_for(bus, ScriptedHost(), trigger)
    async with running(dispatcher):
        noise: list[Event] = make_events(120, type="noise")
        await bus.publish("default", [*noise, new_event("wanted", "/tests")])
        await wait_until(lambda: dispatcher.stats.delivered == 1, timeout=0.6)
