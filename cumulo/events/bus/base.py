"""The bus contract every backend implements (sqlite now; redis, nats, kafka, dapr later).

Delivery model, the same for every backend:

- ``publish`` returns once the events are durable. An event whose
  (``source``, ``id``) was already published to the same topic within the dedup
  window is not stored again; its original offset is returned.
- A consumer *group* has its own cursor over one topic. ``fetch`` leases up to
  ``limit`` messages: first those whose retry time or lease has come due, then
  new ones. A leased message is invisible to the group until the lease expires,
  so a consumer that dies mid-event loses nothing.
- ``settle`` ends leases in one atomic step: :class:`Ack` (optionally publishing
  the events the function returned), :class:`Nack` (deliver again after a
  delay) or :class:`DeadLetter` (publish to the dead-letter topic and ack).
- ``replay`` rewinds a group (or every group on a topic) to an offset or a time.
  The start must lie within the topic (:func:`check_replay_start`, one check
  for every backend): at most one past its last offset, never a time to come.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cumulo.errors import InvalidReplayError, ReplayOutOfRangeError
from cumulo.events.event import Event

Accept = Callable[[Event], bool]
StartAt = Literal["earliest", "latest"]


@dataclass(frozen=True, slots=True)
class Message:
    """An event as one group sees it."""

    offset: int
    topic: str
    event: Event
    published_at: float
    attempt: int = 0  # 1 on first delivery; 0 when read (not leased)


@dataclass(frozen=True, slots=True)
class Ack:
    offset: int
    emit: Sequence[tuple[str, Event]] = ()  # (topic, event) published with the ack


@dataclass(frozen=True, slots=True)
class Nack:
    offset: int
    delay: float
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    offset: int
    topic: str
    event: Event  # already carries the reason extensions


Settlement = Ack | Nack | DeadLetter


@dataclass(frozen=True, slots=True)
class GroupInfo:
    name: str
    topic: str
    cursor: int
    pending: int  # leased or waiting for a retry
    backlog: int  # published after the cursor, not yet fetched


@dataclass(frozen=True, slots=True)
class BusSettings:
    """What every backend accepts besides its URL."""

    dedup_window: float = 600.0
    retention: float = 7 * 86400.0
    extra: dict[str, str] = field(default_factory=dict)


def check_replay(
    group: str | None, topic: str | None, from_offset: int | None, from_time: float | None
) -> None:
    """Raise :class:`InvalidReplayError` unless a replay names one of group/topic and one start."""
    if (group is None) == (topic is None):
        raise InvalidReplayError("replay needs exactly one of group= or topic=")
    if (from_offset is None) == (from_time is None):
        raise InvalidReplayError("replay needs exactly one of from_offset= or from_time=")


def check_replay_start(
    topic: str,
    from_offset: int | None,
    from_time: float | None,
    last_offset: int,
    now: float | None = None,
) -> None:
    """Raise :class:`ReplayOutOfRangeError` unless a replay starts within ``topic``.

    An offset may be 0 up to one past the topic's last offset (the next to be
    written: nothing old is delivered again); a time must be a finite one that
    has already come (and is not before 1970). Anything further would move cursors beyond events yet
    to be published, and delivery would silently stop.
    """
    if from_offset is not None and not 0 <= from_offset <= last_offset + 1:
        if from_offset < 0:
            raise ReplayOutOfRangeError(f"fromOffset {from_offset} is negative")
        raise ReplayOutOfRangeError(
            f"fromOffset {from_offset} is past the end of topic {topic!r}"
            f" (last offset {last_offset})"
        )
    now = time.time() if now is None else now
    if from_time is not None and not (math.isfinite(from_time) and 0 <= from_time <= now):
        raise ReplayOutOfRangeError(
            f"fromTime {from_time!r} is not between 1970 and now ({now:.3f}, Unix seconds)"
        )


class Bus(abc.ABC):
    """An event bus backend. Use as ``async with``; methods are coroutine-safe."""

    url: str

    async def __aenter__(self) -> Bus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        """Store events durably; their offsets, in order (a duplicate gets the original's)."""

    @abc.abstractmethod
    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        """Create ``group`` on ``topic`` if it does not exist (an existing cursor is kept)."""

    @abc.abstractmethod
    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        """Lease up to ``limit`` messages; events ``accept`` rejects are skipped for good."""

    @abc.abstractmethod
    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        """Ack, nack or dead-letter leased messages, atomically."""

    @abc.abstractmethod
    async def wait(self, group: str, timeout: float) -> None:
        """Return when the group may have work (a publish, a retry falling due) or after ``timeout``."""

    @abc.abstractmethod
    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        """Rewind one group, or every group on a topic; the number of events to deliver again."""

    async def check_replay_start(
        self, topic: str, from_offset: int | None, from_time: float | None
    ) -> None:
        """:func:`check_replay_start` against this bus's end of ``topic`` (every backend's replay)."""
        check_replay_start(topic, from_offset, from_time, await self.last_offset(topic))

    @abc.abstractmethod
    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        """Messages of a topic in offset order, without leasing them."""

    @abc.abstractmethod
    async def last_offset(self, topic: str) -> int:
        """The offset of the newest event of ``topic`` still stored; 0 when there is none."""

    @abc.abstractmethod
    async def topics(self) -> list[str]: ...

    @abc.abstractmethod
    async def groups(self) -> list[GroupInfo]: ...

    @abc.abstractmethod
    async def trim(self) -> int:
        """Apply retention; the number of events removed. Never removes undelivered events."""
