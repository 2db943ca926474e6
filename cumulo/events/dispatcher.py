"""The trigger dispatcher: a consumer group that feeds one function.

For each trigger it leases matching events from the bus, delivers them to the
function's destination with up to ``concurrency`` in flight, and settles each
one by the trigger's delivery policy: ack (publishing the function's replies in
the same step), retry after a backoff, or dead-letter with the reason.

Whatever goes wrong while an event is prepared or delivered (it cannot be
encoded for the wire, the destination raises) is that event's failure: it is
retried by the policy and then dead-lettered with the exception as its reason
(``EncodingError: ...``), and counted. Only what the bus itself fails at
(a :class:`~cumulo.errors.BusError`) is left to the lease, which brings the
event back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cumulo.errors import BusError, InvalidEventError
from cumulo.events import delivery, tracing
from cumulo.events.attributes import repaired
from cumulo.events.bus.base import Ack, Bus, DeadLetter, Message, Nack, Settlement, StartAt
from cumulo.events.bus.names import trigger_group
from cumulo.events.event import Event
from cumulo.events.filters import compile_filter
from cumulo.events.middleware import Delivery, DeliveryMiddleware, notify
from cumulo.events.outcome import Destination, Failure, Outcome, RetryLater, Success
from cumulo.spec.models import Trigger

log = logging.getLogger("cumulo.dispatcher")

IDLE_POLL_SECONDS = 1.0  # picks up events written by other processes
LEASE_MARGIN_SECONDS = 10.0
MAX_RECONNECT_SECONDS = 30.0


@dataclass
class TriggerStats:
    delivered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped_duplicates: int = 0


@dataclass
class Seen:
    """Trigger-side dedup: keys seen within the window, oldest first."""

    window: float
    keys: OrderedDict[tuple[str, ...], float] = field(default_factory=OrderedDict)

    def contains(self, key: tuple[str, ...], now: float) -> bool:
        while self.keys and next(iter(self.keys.values())) < now - self.window:
            self.keys.popitem(last=False)
        return key in self.keys

    def add(self, key: tuple[str, ...], now: float) -> None:
        self.keys[key] = now
        self.keys.move_to_end(key)


class TriggerDispatcher:
    def __init__(
        self,
        bus: Bus,
        trigger: Trigger,
        destination: Destination,
        *,
        function_timeout: float,
        concurrency: int,
        middleware: Sequence[DeliveryMiddleware] = (),
    ):
        self.bus = bus
        self.trigger = trigger
        self.destination = destination
        self.policy = trigger.spec.delivery
        self.timeout = self.policy.timeout or function_timeout
        self.concurrency = concurrency
        self.accept = compile_filter(trigger.spec)
        self.stats = TriggerStats()
        self.middleware = tuple(middleware)  # in order: see cumulo.events.middleware
        self._seen = Seen(trigger.spec.dedup.window if trigger.spec.dedup else 0.0)
        self._tasks: set[asyncio.Task[Delivery]] = set()
        self._slot_freed = asyncio.Event()
        self.joined = asyncio.Event()  # the group is on the bus, or joining failed (logged)

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    @property
    def group(self) -> str:
        return trigger_group(self.trigger.name)

    async def run(self) -> None:
        """Fetch and deliver until cancelled; in-flight deliveries are left to their leases."""
        try:
            await self._subscribe()
        finally:
            self.joined.set()
        lease = self.timeout + LEASE_MARGIN_SECONDS
        while True:
            free = self.concurrency - len(self._tasks)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            messages = await self._fetch(free, lease)
            if not messages:
                await self._wait()
            for message in messages:
                self._spawn(message)

    async def _subscribe(self, start: StartAt = "latest") -> None:
        """Join the trigger's group, waiting out a broker that is down (with backoff)."""
        delay = IDLE_POLL_SECONDS
        while True:
            try:
                return await self.bus.subscribe(self.group, self.trigger.spec.topic, start=start)
            except BusError as e:
                log.warning("trigger %s: cannot subscribe yet: %s", self.trigger.name, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_SECONDS)

    async def _wait(self) -> None:
        try:
            await self.bus.wait(self.group, IDLE_POLL_SECONDS)
        except BusError:  # the next fetch says what is wrong
            await asyncio.sleep(IDLE_POLL_SECONDS)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for in-flight deliveries to finish."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)

    async def _fetch(self, limit: int, lease: float) -> list[Message]:
        try:
            return await self.bus.fetch(self.group, limit=limit, lease=lease, accept=self.accept)
        except BusError as e:
            log.warning("trigger %s: fetching failed: %s", self.trigger.name, e)
            await asyncio.sleep(IDLE_POLL_SECONDS)
            return []

    def _spawn(self, message: Message) -> None:
        task = asyncio.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Delivery]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()

    async def deliver_one(self, *, start: StartAt = "latest") -> Outcome | None:
        """Deliver and settle at most one waiting event; its outcome, or None if none waited.

        What a job pod does (``cumulo job``): a new group begins at ``start``.
        """
        await self._subscribe(start)
        messages = await self._fetch(1, self.timeout + LEASE_MARGIN_SECONDS)
        if not messages:
            return None
        return (await self._handle(messages[0])).outcome

    async def _handle(self, message: Message) -> Delivery:
        record = Delivery(
            self.trigger.name,
            self.trigger.spec.function,
            message,
            tracing.ensure_trace(message.event),  # an untraced event gets a trace here
            started=time.time(),
        )
        try:
            record.settlement = await self._settlement_for(message, record)
        except BusError:  # the bus, not the event: the lease brings it back
            log.exception(
                "trigger %s: offset %s: the bus failed", self.trigger.name, message.offset
            )
            return record
        except Exception as error:  # preparing or delivering it failed: the event's own failure
            record.settlement = self._settlement_for_error(message, record, error)
        if not await self._settle_or_dead_letter(message, record):
            return record
        record.settled = time.time()
        notify(self.middleware, record)
        return record

    def _settlement_for_error(
        self, message: Message, record: Delivery, error: Exception
    ) -> Settlement:
        log.warning(
            "trigger %s: offset %s could not be delivered: %r",
            self.trigger.name,
            message.offset,
            error,
        )
        record.outcome = Failure(type(error).__name__, str(error) or repr(error))
        return self._settlement_from(message, record.outcome, record.event)

    async def _settle_or_dead_letter(self, message: Message, record: Delivery) -> bool:
        """Settle; a settlement whose events the bus refuses becomes a dead letter instead.

        False when nothing could be settled: the lease then brings the event back.
        """
        assert record.settlement is not None
        try:
            await self._settle(record.settlement)
            return True
        except InvalidEventError as error:
            if isinstance(record.settlement, DeadLetter):
                log.exception("trigger %s: dead letter refused", self.trigger.name)
                return False
            if isinstance(record.outcome, Success):
                self.stats.delivered -= 1
            reason = f"the bus refused what settling it publishes: {error}"
            record.settlement = self._dead_letter(message, type(error).__name__, reason)
        except Exception:  # the lease brings it back; never lose it
            log.exception(
                "trigger %s: settling offset %s failed", self.trigger.name, message.offset
            )
            return False
        return await self._settle_or_dead_letter(message, record)

    async def _invoke(self, record: Delivery) -> Outcome:
        record.invoked = time.time()
        record.outcome = await self.destination.deliver(record.event, timeout=self.timeout)
        record.duration = time.time() - record.invoked
        return record.outcome

    async def _settlement_for(self, message: Message, record: Delivery) -> Settlement:
        now = time.time()
        if delivery.is_expired(self.policy, message.published_at, now):
            return self._dead_letter(message, "EventExpired", "older than maxEventAge")
        key = self._dedup_key(message.event)
        if key and self._seen.contains(key, now):
            self.stats.skipped_duplicates += 1
            return Ack(message.offset)
        outcome = await self._invoke(record)
        if key and isinstance(outcome, Success):
            self._seen.add(key, now)
        return self._settlement_from(message, outcome, record.event)

    def _settlement_from(self, message: Message, outcome: Outcome, cause: Event) -> Settlement:
        if isinstance(outcome, Success):
            self.stats.delivered += 1
            topic = self.trigger.spec.topic
            replies = [tracing.reply_of(cause, reply) for reply in outcome.replies]
            return Ack(message.offset, emit=[(topic, reply) for reply in replies])
        retryable = isinstance(outcome, RetryLater) or not outcome.permanent
        if retryable and delivery.should_retry(self.policy, message.attempt):
            self.stats.retried += 1
            delay = getattr(outcome, "delay", None)
            if delay is None:
                delay = delivery.backoff_delay(self.policy, message.attempt)
            return Nack(message.offset, delay, f"{outcome.error_type}: {outcome.message}")
        return self._dead_letter(message, outcome.error_type, outcome.message)

    def _dead_letter(self, message: Message, error_type: str, text: str) -> DeadLetter:
        """A dead letter the bus can take, even for an event stored before today's rules."""
        self.stats.dead_lettered += 1
        attributes, changed = repaired(message.event.attributes)
        if changed:
            text += f" (attributes repaired or dropped to dead-letter it: {', '.join(changed)})"
        event = delivery.dead_letter(
            Event(attributes, message.event.data),
            error_type=error_type,
            message=text,
            attempts=message.attempt,
            destination=self.trigger.spec.function,
            trigger=self.trigger.name,
        )
        log.warning(
            "trigger %s: dead-lettered %s after %d attempt(s): %s: %s",
            self.trigger.name,
            message.event,
            message.attempt,
            error_type,
            text,
        )
        return DeadLetter(message.offset, self.policy.dead_letter_topic, event)

    def _dedup_key(self, event: Event) -> tuple[str, ...]:
        """The trigger's dedup key for an event; empty when the trigger does not dedup."""
        if self.trigger.spec.dedup is None:
            return ()
        return tuple(str(event.attributes.get(name, "")) for name in self.trigger.spec.dedup.key)

    async def _settle(self, settlement: Settlement) -> None:
        while True:
            try:
                await self.bus.settle(self.group, [settlement])
                return
            except BusError as e:  # keep the outcome; the bus may come back
                log.warning("trigger %s: settling failed, retrying: %s", self.trigger.name, e)
                await asyncio.sleep(IDLE_POLL_SECONDS)
