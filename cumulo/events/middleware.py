"""Delivery middleware: cross-cutting work (metrics, tracing) watching each delivery.

A :class:`~cumulo.events.dispatcher.TriggerDispatcher` takes an explicit,
ordered list of middleware. After each message is settled it hands every
middleware, in that order, a :class:`Delivery`: what was delivered, what the
function did, how it was settled and when. Middleware observe; retries and
dead-lettering stay the dispatcher's own rules. A middleware that raises is
logged and skipped: observing never costs an event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack, Settlement
from cumulo.events.event import Event
from cumulo.events.outcome import Outcome

log = logging.getLogger("cumulo.middleware")


@dataclass
class Delivery:
    """One message through one trigger, from fetch to settlement."""

    trigger: str
    function: str
    message: Message
    event: Event  # as delivered: the message's event with its trace context
    started: float  # wall clock, when the dispatcher took the message
    invoked: float | None = None  # when the function was called (None: it was not)
    duration: float | None = None  # how long the function took
    outcome: Outcome | None = None
    settlement: Settlement | None = None
    settled: float | None = None

    @property
    def status(self) -> str:
        """``delivered``, ``retried``, ``dead-lettered`` or ``skipped`` (a duplicate)."""
        if isinstance(self.settlement, DeadLetter):
            return "dead-lettered"
        if isinstance(self.settlement, Nack):
            return "retried"
        if isinstance(self.settlement, Ack) and self.outcome is not None:
            return "delivered"
        return "skipped"


class DeliveryMiddleware(Protocol):
    def after_delivery(self, delivery: Delivery) -> None: ...


def notify(middleware: Sequence[DeliveryMiddleware], delivery: Delivery) -> None:
    """Hand a settled delivery to each middleware, in order."""
    for each in middleware:
        try:
            each.after_delivery(delivery)
        except Exception:
            log.exception("middleware %s failed on a delivery", type(each).__name__)
