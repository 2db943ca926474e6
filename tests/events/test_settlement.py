"""The one settlement decision: Ack, Nack or DeadLetter from the policy, the attempt and the outcome."""

from __future__ import annotations

import pytest

from cumulo.events import delivery, tracing
from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack
from cumulo.events.event import new_event
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.events.settlement import decide, expired
from cumulo.spec.models import Metadata, Trigger, TriggerSpec


def trigger(**policy: object) -> Trigger:
    spec = TriggerSpec(
        function="fn",
        topic="orders",
        delivery={"retries": 2, "backoffDelay": 1.0, "deadLetterTopic": "dlq", **policy},
    )
    return Trigger(metadata=Metadata(name="t"), spec=spec)


def message(attempt: int, published_at: float = 1000.0) -> Message:
    event = tracing.ensure_trace(new_event("order.placed", "/shop", {"n": 1}, id="e-1"))
    return Message(7, "orders", event, published_at, attempt)


def test_success_acks_with_the_replies_in_the_events_trace() -> None:
    cause = message(1)
    reply = new_event("order.billed", "/fn", {"n": 1})
    settled = decide(trigger(), cause, Success([reply]), cause.event)
    assert isinstance(settled, Ack) and settled.offset == 7
    [(topic, sent)] = settled.emit
    assert topic == "orders"
    assert tracing.trace_id_of(sent) == tracing.trace_id_of(cause.event)


@pytest.mark.parametrize(
    ("outcome", "delay"),
    [
        (Failure("ValueError", "boom"), 1.0),  # the policy's backoff after attempt 1
        (RetryLater("Retry", "later", 5.0), 5.0),  # the function's own delay wins
    ],
)
def test_a_retryable_failure_within_the_retries_is_a_nack(outcome, delay) -> None:
    settled = decide(trigger(), message(1), outcome, message(1).event)
    assert settled == Nack(7, delay, f"{outcome.error_type}: {outcome.message}")


@pytest.mark.parametrize(
    ("outcome", "attempt"),
    [(Failure("ValueError", "boom"), 3), (Failure("PermanentError", "bad", permanent=True), 1)],
)
def test_exhausted_or_permanent_is_a_dead_letter_saying_why(outcome, attempt) -> None:
    settled = decide(trigger(), message(attempt), outcome, message(attempt).event)
    assert isinstance(settled, DeadLetter) and settled.topic == "dlq"
    reasons = settled.event.attributes
    assert reasons[delivery.ERROR_TYPE] == outcome.error_type
    assert reasons[delivery.ERROR_MESSAGE] == outcome.message
    assert int(reasons[delivery.ATTEMPTS]) == attempt
    assert (reasons[delivery.TRIGGER], reasons[delivery.DESTINATION]) == ("t", "fn")


def test_an_event_older_than_max_event_age_is_dead_lettered_before_it_runs() -> None:
    policy = trigger(maxEventAge=60)
    assert expired(policy, message(1, published_at=1000.0), now=1030.0) is None
    letter = expired(policy, message(1, published_at=1000.0), now=1061.0)
    assert letter is not None and letter.event.attributes[delivery.ERROR_TYPE] == "EventExpired"
