"""The trigger dispatcher: a consumer group that feeds one function.

For each trigger it leases matching events from the bus, hands each to the
trigger's :class:`~cumulo.events.engine.DeliveryEngine` (maxEventAge, dedup,
the delivery, the settlement decision) with up to ``concurrency`` in flight,
and settles it on the bus: ack (publishing the function's replies in the same
step), retry after a backoff, or dead-letter with the reason. A settlement
whose events the bus refuses becomes a dead letter. Only what the bus itself
fails at (a :class:`~cumulo.errors.BusError`) is left to the lease, which
brings the event back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from cumulo.errors import BusError, InvalidEventError
from cumulo.events.bus.base import Bus, DeadLetter, Message, Settlement, StartAt
from cumulo.events.bus.names import trigger_group
from cumulo.events.engine import DeliveryEngine
from cumulo.events.filters import compile_filter
from cumulo.events.middleware import Delivery, DeliveryMiddleware
from cumulo.events.outcome import Destination, Outcome
from cumulo.spec.models import Trigger

log = logging.getLogger("cumulo.dispatcher")

IDLE_POLL_SECONDS = 1.0  # picks up events written by other processes
LEASE_MARGIN_SECONDS = 10.0
MAX_RECONNECT_SECONDS = 30.0


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
        self.timeout = trigger.spec.delivery.timeout or function_timeout
        self.concurrency = concurrency
        self.accept = compile_filter(trigger.spec)
        self.engine = DeliveryEngine(
            trigger, destination, timeout=self.timeout, middleware=middleware
        )
        self.stats = self.engine.stats
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
        record = await self.engine.attempt(message)
        if record.settlement is not None and await self._settle_or_dead_letter(record):
            self.engine.finished(record)
        return record

    async def _settle_or_dead_letter(self, record: Delivery) -> bool:
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
            self.engine.refused(record, error)
        except Exception:  # the lease brings it back; never lose it
            log.exception(
                "trigger %s: settling offset %s failed", self.trigger.name, record.message.offset
            )
            return False
        return await self._settle_or_dead_letter(record)

    async def _settle(self, settlement: Settlement) -> None:
        while True:
            try:
                await self.bus.settle(self.group, [settlement])
                return
            except BusError as e:  # keep the outcome; the bus may come back
                log.warning("trigger %s: settling failed, retrying: %s", self.trigger.name, e)
                await asyncio.sleep(IDLE_POLL_SECONDS)
