"""A Kafka bus group's state in the bus process: cursor, leases, retries.

Kafka keeps, per group, one committed offset. The bus keeps above it, in memory,
what a log with a cursor cannot: which messages are leased or waiting for a
retry, and their attempts. The committed offset is the group's *low-water
mark*: the first message not yet settled. So a bus process that dies loses no
event: a new one starts again from the committed offset (messages settled above
it are delivered again: at-least-once, with attempts counted afresh).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from cumulo.events.bus.base import Accept, Message


@dataclass
class Pending:
    message: Message
    due: float  # the lease's end, or when a retry falls due


@dataclass
class GroupState:
    name: str
    topic: str
    consumer: Any
    next: int  # the bus offset of the next new message
    buffer: deque[Message] = field(default_factory=deque)
    pending: dict[int, Pending] = field(default_factory=dict)
    committed: int = -1  # Kafka offset last committed
    position: int = 0  # Kafka offset the consumer reads next

    @property
    def cursor(self) -> int:
        return self.next - 1

    def low_water(self) -> int:
        """The Kafka offset to commit: the first message not settled."""
        return min([self.next, *self.pending]) - 1

    def rewind(self, offset: int) -> None:
        self.next = offset
        self.position = offset - 1
        self.buffer.clear()

    def take(self, messages: list[Message]) -> None:
        """Add freshly read messages to the buffer (those before ``next`` are dropped)."""
        self.buffer.extend(m for m in messages if m.offset >= self.next)
        if messages:
            self.position = max(self.position, messages[-1].offset)

    def due(self, now: float) -> list[Pending]:
        return sorted(
            (p for p in self.pending.values() if p.due <= now), key=lambda p: p.message.offset
        )

    def next_due(self) -> float | None:
        return min((p.due for p in self.pending.values()), default=None)

    def lease(self, limit: int, lease: float, now: float, accept: Accept | None) -> list[Message]:
        """Choose, then apply: ``accept`` raising leaves the state as it was."""
        check: Callable[[Message], bool] = (
            (lambda m: accept(m.event)) if accept else (lambda m: True)
        )
        retries, fresh, rejected = self._choose(limit, now, check)
        chosen: list[Message] = []
        for pending in retries:
            pending.message = replace(pending.message, attempt=pending.message.attempt + 1)
            pending.due = now + lease
            chosen.append(pending.message)
        for offset in rejected:
            self.pending.pop(offset, None)
        for message in fresh:
            leased = replace(message, attempt=1)
            self.pending[message.offset] = Pending(leased, now + lease)
            chosen.append(leased)
        return chosen

    def _choose(
        self, limit: int, now: float, check: Callable[[Message], bool]
    ) -> tuple[list[Pending], list[Message], list[int]]:
        retries: list[Pending] = []
        rejected: list[int] = []
        for pending in self.due(now):
            if len(retries) >= limit:
                break
            if check(pending.message):
                retries.append(pending)
            else:
                rejected.append(pending.message.offset)
        fresh: list[Message] = []
        consumed = 0
        for message in self.buffer:
            if len(retries) + len(fresh) >= limit:
                break
            consumed += 1
            if message.offset not in self.pending and check(message):
                fresh.append(message)
        for _ in range(consumed):
            self.next = self.buffer.popleft().offset + 1
        return retries, fresh, rejected
