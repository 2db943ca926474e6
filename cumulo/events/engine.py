"""The delivery engine: one message through one trigger, whichever path brought it.

The pull dispatcher (:mod:`cumulo.events.dispatcher`) and the Dapr push path
(:mod:`cumulo.runtimes.local.dapr_push`) both hand each message to
:meth:`DeliveryEngine.attempt`, which applies the trigger's rules in order:
``maxEventAge`` (dead-letter an event too old to run), dedup (acknowledge a key
already delivered within the window without running it), the delivery itself
(an exception while preparing or delivering is the event's own failure), and
the one settlement decision (:func:`cumulo.events.settlement.decide`). The
path then carries the settlement out its own way and calls
:meth:`DeliveryEngine.finished`, which counts it and hands it to the delivery
middleware. Only what the bus fails at (a :class:`~cumulo.errors.BusError`)
leaves a delivery unsettled, for the path to bring it back.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cumulo.errors import BusError
from cumulo.events import delivery, tracing
from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack
from cumulo.events.event import Event
from cumulo.events.middleware import Delivery, DeliveryMiddleware, notify
from cumulo.events.outcome import Destination, Failure, Outcome, Success
from cumulo.events.settlement import dead_letter, decide, expired
from cumulo.spec.models import Trigger

log = logging.getLogger("cumulo.dispatcher")


@dataclass
class TriggerStats:
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped_duplicates: int = 0


@dataclass
class Seen:
    """Trigger-side dedup: keys seen within the window, mostly oldest first.

    Deliveries finish out of order, so a key is stamped with its own delivery's
    start, and a newer stamp may sit ahead of an older one: eviction from the
    front is only housekeeping; each key's own stamp decides."""

    window: float
    keys: OrderedDict[tuple[str, ...], float] = field(default_factory=OrderedDict)

    def contains(self, key: tuple[str, ...], now: float) -> bool:
        while self.keys and next(iter(self.keys.values())) < now - self.window:
            self.keys.popitem(last=False)
        stamp = self.keys.get(key)
        return stamp is not None and stamp >= now - self.window

    def add(self, key: tuple[str, ...], now: float) -> None:
        self.keys[key] = now
        self.keys.move_to_end(key)


class DeliveryEngine:
    """Delivers messages to one trigger's function and decides what becomes of each."""

    def __init__(
        self,
        trigger: Trigger,
        destination: Destination,
        *,
        timeout: float,
        middleware: Sequence[DeliveryMiddleware] = (),
    ):
        self.trigger = trigger
        self.destination = destination
        self.timeout = timeout
        self.middleware = tuple(middleware)  # in order: see cumulo.events.middleware
        self.stats = TriggerStats()
        self._seen = Seen(trigger.spec.dedup.window if trigger.spec.dedup else 0.0)

    async def attempt(self, message: Message) -> Delivery:
        """Run the trigger's rules on ``message``; its record, with the settlement decided
        (``None`` when the bus failed: the path brings the message back)."""
        record = Delivery(
            self.trigger.name,
            self.trigger.spec.function,
            message,
            tracing.ensure_trace(message.event),  # an untraced event gets a trace here
            started=time.time(),
        )
        now = time.time()
        if (too_old := expired(self.trigger, message, now)) is not None:
            record.settlement = too_old
            return record
        key = self._dedup_key(message.event)
        if key and self._seen.contains(key, now):
            record.settlement = Ack(message.offset)
            return record
        try:
            outcome = await self._invoke(record)
        except BusError:
            log.exception(
                "trigger %s: offset %s: the bus failed", self.trigger.name, message.offset
            )
            return record
        if key and isinstance(outcome, Success):
            self._seen.add(key, now)
        record.settlement = decide(self.trigger, message, outcome, record.event)
        return record

    def refused(self, record: Delivery, error: Exception) -> None:
        """The bus refused what the settlement publishes: dead-letter the event instead."""
        reason = f"the bus refused what settling it publishes: {error}"
        record.settlement = dead_letter(self.trigger, record.message, type(error).__name__, reason)

    def finished(self, record: Delivery) -> None:
        """The settlement is carried out: count it, log a dead letter, tell the middleware."""
        record.settled = time.time()
        settlement = record.settlement
        if isinstance(settlement, DeadLetter):
            self.stats.dead_lettered += 1
            log.warning(
                "trigger %s: dead-lettered %s after %d attempt(s): %s",
                self.trigger.name, record.message.event, record.message.attempt,
                _reason(settlement.event),
            )  # fmt: skip
        elif isinstance(settlement, Nack):
            self.stats.retried += 1
        elif record.outcome is None:
            self.stats.skipped_duplicates += 1
        else:
            self.stats.delivered += 1
        notify(self.middleware, record)

    async def _invoke(self, record: Delivery) -> Outcome:
        record.invoked = time.time()
        try:
            record.outcome = await self.destination.deliver(record.event, timeout=self.timeout)
        except BusError:
            raise
        except Exception as error:  # preparing or delivering it failed: the event's own failure
            log.warning(
                "trigger %s: offset %s could not be delivered: %r",
                self.trigger.name, record.message.offset, error,
            )  # fmt: skip
            record.outcome = Failure(type(error).__name__, str(error) or repr(error))
        record.duration = time.time() - record.invoked
        return record.outcome

    def _dedup_key(self, event: Event) -> tuple[str, ...]:
        """The trigger's dedup key for an event; empty when the trigger does not dedup."""
        if self.trigger.spec.dedup is None:
            return ()
        return tuple(str(event.attributes.get(name, "")) for name in self.trigger.spec.dedup.key)


def _reason(letter: Event) -> str:
    attributes = letter.attributes
    return f"{attributes.get(delivery.ERROR_TYPE)}: {attributes.get(delivery.ERROR_MESSAGE)}"
