"""Outcomes and the settlement decision, beyond the cases tests/events/test_settlement.py covers."""

from __future__ import annotations

import dataclasses

import pytest

from cumulo.events import delivery, tracing
from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack
from cumulo.events.event import Event, new_event, validate_attributes
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.events.settlement import EXPIRED, dead_letter, decide, expired
from tests.events.unit.conftest import make_trigger

CAUSE_TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def message(event: Event | None = None, *, attempt: int = 1, published_at: float = 0.0) -> Message:
    return Message(11, "orders", event or new_event("order.placed", "/shop"), published_at, attempt)


# --- outcomes ----------------------------------------------------------------------------


def test_outcomes_are_immutable_values() -> None:
    failure = Failure("ValueError", "bad")
    with pytest.raises(dataclasses.FrozenInstanceError):
        failure.permanent = True  # type: ignore[misc]
    assert failure == Failure("ValueError", "bad", permanent=False)
    assert RetryLater("Retry", "later").delay is None


def test_each_success_has_its_own_reply_list() -> None:
    first, second = Success(), Success()
    first.replies.append(new_event("r", "/fn"))
    assert second.replies == []


# --- decide ----------------------------------------------------------------------------------


def test_a_success_without_replies_is_a_bare_ack() -> None:
    assert decide(make_trigger(), message(), Success(), message().event) == Ack(11, emit=[])


def test_replies_go_to_the_triggers_topic_in_order() -> None:
    trigger = make_trigger(topic="orders")
    cause = new_event("order.placed", "/shop", traceparent=CAUSE_TRACE)
    replies = [new_event("order.billed", "/fn"), new_event("order.packed", "/fn")]
    settled = decide(trigger, message(cause), Success(replies), cause)
    assert isinstance(settled, Ack)
    assert [(topic, event.type) for topic, event in settled.emit] == [
        ("orders", "order.billed"),
        ("orders", "order.packed"),
    ]
    spans = {tracing.context_of(event.attributes).span_id for _, event in settled.emit}  # type: ignore[union-attr]
    assert len(spans) == 2 and "b7ad6b7169203331" not in spans  # each a new child span


def test_a_reply_already_in_the_causes_trace_is_published_as_it_is() -> None:
    cause = new_event("order.placed", "/shop", traceparent=CAUSE_TRACE)
    with tracing.handling(cause):
        reply = new_event("order.billed", "/fn")  # made while handling: already a child
    settled = decide(make_trigger(), message(cause), Success([reply]), cause)
    assert isinstance(settled, Ack) and settled.emit[0][1] is reply


def test_replies_to_an_untraced_cause_are_left_untraced() -> None:
    cause = new_event("order.placed", "/shop")
    reply = new_event("order.billed", "/fn")
    settled = decide(make_trigger(), message(cause), Success([reply]), cause)
    assert isinstance(settled, Ack) and settled.emit[0][1] is reply


def test_without_retries_the_first_failure_is_a_dead_letter() -> None:
    trigger = make_trigger(delivery={"retries": 0})
    settled = decide(trigger, message(), Failure("ValueError", "bad"), message().event)
    assert isinstance(settled, DeadLetter) and settled.topic == "dead-letter"


def test_a_retry_request_past_the_budget_is_a_dead_letter_too() -> None:
    """``RetryLater`` is transient, but it does not buy retries beyond the policy's."""
    trigger = make_trigger(delivery={"retries": 2})
    asked = RetryLater("Retry", "still busy", 1.0)
    settled = decide(trigger, message(attempt=3), asked, message().event)
    assert isinstance(settled, DeadLetter)
    assert settled.event.attributes[delivery.ERROR_TYPE] == "Retry"
    assert settled.event.attributes[delivery.ERROR_MESSAGE] == "still busy"


def test_a_retry_request_without_a_delay_waits_the_policys_backoff() -> None:
    trigger = make_trigger(delivery={"backoffPolicy": "linear", "backoffDelay": "2s"})
    settled = decide(trigger, message(attempt=3), RetryLater("Retry", "x"), message().event)
    assert settled == Nack(11, 6.0, "Retry: x")


def test_a_retry_requests_own_delay_is_not_capped_by_max_backoff() -> None:
    trigger = make_trigger(delivery={"maxBackoff": "5s"})
    settled = decide(trigger, message(), RetryLater("Retry", "x", 60.0), message().event)
    assert settled == Nack(11, 60.0, "Retry: x")


def test_the_policys_backoff_is_capped_by_max_backoff() -> None:
    trigger = make_trigger(delivery={"retries": 10, "backoffDelay": 1, "maxBackoff": "5s"})
    settled = decide(trigger, message(attempt=8), Failure("E", "x"), message().event)
    assert settled == Nack(11, 5.0, "E: x")


# --- dead letters and age ------------------------------------------------------------------


def test_a_dead_letter_keeps_the_event_and_adds_why() -> None:
    original = new_event("order.placed", "/shop", {"n": 1}, region="eu")
    letter = dead_letter(make_trigger("billing", function="bill"), message(original), "E", "why")
    assert (letter.offset, letter.topic) == (11, "dead-letter")
    event = letter.event
    assert (event.id, event.data, event.attributes["region"]) == (original.id, {"n": 1}, "eu")
    assert event.attributes[delivery.ERROR_MESSAGE] == "why"
    assert event.attributes[delivery.DESTINATION] == "bill"
    assert event.attributes[delivery.TRIGGER] == "billing"


def test_a_stored_event_that_breaks_todays_rules_is_repaired_to_dead_letter_it() -> None:
    legacy = Event({**new_event("t", "/s").attributes, "note": "a\nb", "Bad-Name": "x"}, b"raw")
    letter = dead_letter(make_trigger(), message(legacy), "ValueError", "boom")
    attributes = letter.event.attributes
    assert validate_attributes(attributes) == []
    assert attributes["note"] == "a b" and "Bad-Name" not in attributes
    assert attributes[delivery.ERROR_MESSAGE] == (
        "boom (attributes repaired or dropped to dead-letter it: note, Bad-Name)"
    )
    assert letter.event.data == b"raw"


def test_without_max_event_age_nothing_is_too_old() -> None:
    assert expired(make_trigger(), message(published_at=0.0), now=1e12) is None


def test_an_expired_event_is_dead_lettered_on_the_triggers_topic_at_its_attempt() -> None:
    trigger = make_trigger(delivery={"maxEventAge": "10s", "deadLetterTopic": "late"})
    letter = expired(trigger, message(attempt=3, published_at=100.0), now=111.0)
    assert letter is not None and letter.topic == "late"
    assert letter.event.attributes[delivery.ERROR_TYPE] == EXPIRED
    assert letter.event.attributes[delivery.ATTEMPTS] == "3"
