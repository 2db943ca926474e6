"""What becomes of a message after a delivery attempt: one decision for every delivery path.

:func:`decide` is a pure function of the trigger, the message (its attempt) and
the outcome: an :class:`~cumulo.events.bus.base.Ack` carrying the function's
replies in the event's trace, a :class:`~cumulo.events.bus.base.Nack` after the
function's own delay or the policy's backoff, or a
:class:`~cumulo.events.bus.base.DeadLetter` carrying why (see
:mod:`cumulo.events.delivery`). The pull dispatcher settles it on the bus; the
Dapr push path turns it into Dapr's ``SUCCESS`` / ``RETRY`` after publishing
what it carries.
"""

from __future__ import annotations

from cumulo.events import delivery, tracing
from cumulo.events.attributes import repaired
from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack, Settlement
from cumulo.events.event import Event
from cumulo.events.outcome import Outcome, RetryLater, Success
from cumulo.spec.models import Trigger

EXPIRED = "EventExpired"


def decide(trigger: Trigger, message: Message, outcome: Outcome, cause: Event) -> Settlement:
    """The settlement of ``message`` after ``outcome``; ``cause`` is the event as delivered."""
    if isinstance(outcome, Success):
        replies = [tracing.reply_of(cause, reply) for reply in outcome.replies]
        return Ack(message.offset, emit=[(trigger.spec.topic, reply) for reply in replies])
    policy = trigger.spec.delivery
    retryable = isinstance(outcome, RetryLater) or not outcome.permanent
    if retryable and delivery.should_retry(policy, message.attempt):
        delay = outcome.delay if isinstance(outcome, RetryLater) else None
        if delay is None:
            delay = delivery.backoff_delay(policy, message.attempt)
        return Nack(message.offset, delay, f"{outcome.error_type}: {outcome.message}")
    return dead_letter(trigger, message, outcome.error_type, outcome.message)


def expired(trigger: Trigger, message: Message, now: float) -> DeadLetter | None:
    """A dead letter for a message older than the trigger's ``maxEventAge``, else ``None``."""
    if delivery.is_expired(trigger.spec.delivery, message.published_at, now):
        return dead_letter(trigger, message, EXPIRED, "older than maxEventAge")
    return None


def dead_letter(trigger: Trigger, message: Message, error_type: str, text: str) -> DeadLetter:
    """A dead letter the bus can take, even for an event stored before today's rules."""
    attributes, changed = repaired(message.event.attributes)
    if changed:
        text += f" (attributes repaired or dropped to dead-letter it: {', '.join(changed)})"
    event = delivery.dead_letter(
        Event(attributes, message.event.data),
        error_type=error_type,
        message=text,
        attempts=message.attempt,
        destination=trigger.spec.function,
        trigger=trigger.name,
    )
    return DeadLetter(message.offset, trigger.spec.delivery.dead_letter_topic, event)
