"""Test helpers that ship with Cumulo: fakes for unit tests of code around the bus.

:class:`MemoryBus` keeps the bus contract's semantics (offsets, dedup window,
groups, leases, retries, dead letters, replay, retention) in memory. It runs
in one event loop and keeps nothing across processes; the contract suite runs
it next to the real backends so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cumulo.errors import BusError, InvalidEventError
from cumulo.events.bus.base import (
    Accept,
    Ack,
    Bus,
    BusSettings,
    DeadLetter,
    GroupInfo,
    Message,
    Nack,
    Settlement,
    StartAt,
    check_replay,
)
from cumulo.events.event import Event, from_json, new_event, spec_problems, to_json

SCAN_FACTOR = 50  # like the SQLite bus: a fetch scans at most limit * 50 new events


@dataclass(frozen=True, slots=True)
class _Stored:
    offset: int
    published_at: float
    body: bytes  # events go through the JSON format, as on a real bus


@dataclass(slots=True)
class _Delivery:
    attempts: int
    due: float
    error: str = ""


@dataclass(slots=True)
class _Group:
    topic: str
    cursor: int
    deliveries: dict[int, _Delivery] = field(default_factory=dict)
    bell: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryBus(Bus):
    """An in-memory :class:`~cumulo.events.bus.base.Bus` for unit tests."""

    def __init__(self, url: str = "memory://", *, bus_settings: BusSettings | None = None):
        self.url = url
        self.settings = bus_settings or BusSettings()
        self._topics: dict[str, list[_Stored]] = {}
        self._by_offset: dict[int, tuple[str, _Stored]] = {}
        self._dedup: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._groups: dict[str, _Group] = {}
        self._last_offset = 0

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close; the contents stay until the object goes."""

    async def publish(
        self, topic: str, events: Sequence[Event], *, dedup: bool = True
    ) -> list[int]:
        bodies = [(event, _encode(event)) for event in events]
        window = self.settings.dedup_window if dedup else 0.0
        return [self._append(topic, event, body, window) for event, body in bodies]

    def _append(self, topic: str, event: Event, body: bytes, window: float) -> int:
        now, key = time.time(), (topic, event.source, event.id)
        if window > 0 and key in self._dedup and self._dedup[key][1] > now - window:
            return self._dedup[key][0]
        self._last_offset += 1
        stored = _Stored(self._last_offset, now, body)
        self._topics.setdefault(topic, []).append(stored)
        self._by_offset[stored.offset] = (topic, stored)
        if window > 0:
            self._dedup[key] = (stored.offset, now)
        for group in self._groups.values():
            if group.topic == topic:
                group.bell.set()
        return stored.offset

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        existing = self._groups.get(group)
        if existing is not None:
            if existing.topic != topic:
                raise BusError(f"group {group!r} already consumes topic {existing.topic!r}")
            return
        log = self._topics.get(topic, [])
        cursor = log[-1].offset if start == "latest" and log else 0
        self._groups[group] = _Group(topic, cursor)
        self._groups[group].bell.set()

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        state = self._group(group)
        state.bell.clear()
        now = time.time()
        due = self._due(state, limit, now)
        want = limit - len(due)
        fresh, cursor = self._scan_new(state, want, accept)  # may raise: no change yet
        for offset in due:
            delivery = state.deliveries[offset]
            delivery.attempts, delivery.due = delivery.attempts + 1, now + lease
        state.deliveries.update({offset: _Delivery(1, now + lease) for offset in fresh})
        state.cursor = cursor
        if len(fresh) < want and self._has_new(state):  # the scan's budget ran out: fetch again
            state.bell.set()
        return [self._message(o, state.deliveries[o].attempts) for o in [*due, *fresh]]

    def _has_new(self, state: _Group) -> bool:
        stored = self._topics.get(state.topic)
        return stored is not None and len(stored) > 0 and stored[-1].offset > state.cursor

    def _due(self, state: _Group, limit: int, now: float) -> list[int]:
        due = sorted((d.due, offset) for offset, d in state.deliveries.items() if d.due <= now)
        return [offset for _, offset in due[: max(limit, 0)]]

    def _scan_new(self, state: _Group, want: int, accept: Accept | None) -> tuple[list[int], int]:
        """Offsets of up to ``want`` new accepted events, and the cursor after the scan."""
        if want <= 0:
            return [], state.cursor
        fresh = [s for s in self._topics.get(state.topic, []) if s.offset > state.cursor]
        taken: list[int] = []
        cursor = state.cursor
        for stored in fresh[: max(want, min(want * SCAN_FACTOR, 5000))]:
            cursor = stored.offset
            if stored.offset in state.deliveries:  # still pending after a replay
                continue
            if accept is None or accept(self._message(stored.offset, 1).event):
                taken.append(stored.offset)
                if len(taken) == want:
                    break
        return taken, cursor

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        state = self._group(group)
        for settlement in settlements:  # check first: a bad event must change nothing
            for event in _outgoing(settlement):
                _encode(event)
        for settlement in settlements:
            self._settle_one(state, settlement)

    def _settle_one(self, state: _Group, settlement: Settlement) -> None:
        delivery = state.deliveries.get(settlement.offset)
        if isinstance(settlement, Nack):
            if delivery is not None:
                delivery.due, delivery.error = time.time() + settlement.delay, settlement.error
                state.bell.set()  # wakes waiters early; the contract allows that
            return
        state.deliveries.pop(settlement.offset, None)
        if isinstance(settlement, Ack):
            for topic, event in settlement.emit:
                self._append(topic, event, _encode(event), self.settings.dedup_window)
        else:
            self._append(settlement.topic, settlement.event, _encode(settlement.event), 0.0)

    async def wait(self, group: str, timeout: float) -> None:
        state = self._group(group)
        dues = [delivery.due for delivery in state.deliveries.values()]
        timeout = min([timeout, *(due - time.time() for due in dues)])
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.bell.wait(), timeout)

    async def replay(
        self,
        *,
        group: str | None = None,
        topic: str | None = None,
        from_offset: int | None = None,
        from_time: float | None = None,
    ) -> int:
        check_replay(group, topic, from_offset, from_time)
        replayed = self._group(group).topic if group else str(topic)
        await self.check_replay_start(replayed, from_offset, from_time)
        states = (
            [self._group(group)]
            if group
            else [g for g in self._groups.values() if g.topic == topic]
        )
        return sum(self._rewind(state, from_offset, from_time) for state in states)

    def _rewind(self, state: _Group, offset: int | None, at: float | None) -> int:
        log = self._topics.get(state.topic, [])
        if offset is not None:
            cursor = max(offset - 1, 0)
        else:
            assert at is not None
            cursor = max([s.offset for s in log if s.published_at < at], default=0)
        again = sum(1 for s in log if cursor < s.offset <= state.cursor)
        state.cursor = cursor
        state.bell.set()
        return again

    async def read(
        self, topic: str, *, after: int = 0, limit: int = 100, since: float | None = None
    ) -> list[Message]:
        log = self._topics.get(topic, [])
        since = float("-inf") if since is None else since
        chosen = [s for s in log if s.offset > after and s.published_at >= since]
        return [self._message(s.offset, 0) for s in chosen[:limit]]

    async def last_offset(self, topic: str) -> int:
        log = self._topics.get(topic)
        return log[-1].offset if log else 0

    async def topics(self) -> list[str]:
        with_events = [topic for topic, log in self._topics.items() if log]
        return sorted({*with_events, *(g.topic for g in self._groups.values())})

    async def groups(self) -> list[GroupInfo]:
        return [
            GroupInfo(name, g.topic, g.cursor, len(g.deliveries), self._backlog(g))
            for name, g in sorted(self._groups.items())
        ]

    def _backlog(self, state: _Group) -> int:
        return sum(1 for s in self._topics.get(state.topic, []) if s.offset > state.cursor)

    async def trim(self) -> int:
        now = time.time()
        removed = sum(self._trim_topic(topic, now) for topic in self._topics)
        self._dedup = {
            key: seen
            for key, seen in self._dedup.items()
            if seen[1] > now - self.settings.dedup_window
        }
        return removed

    def _trim_topic(self, topic: str, now: float) -> int:
        groups = [g for g in self._groups.values() if g.topic == topic]
        pending = {offset for g in groups for offset in g.deliveries}
        floor = min((g.cursor for g in groups), default=None)
        log = self._topics[topic]

        def expired(s: _Stored) -> bool:
            done = (floor is None or s.offset <= floor) and s.offset not in pending
            return done and s.published_at < now - self.settings.retention

        kept = [s for s in log if not expired(s)]
        for stored in log:
            if expired(stored):
                del self._by_offset[stored.offset]
        self._topics[topic] = kept
        return len(log) - len(kept)

    def _group(self, group: str) -> _Group:
        if group not in self._groups:
            raise BusError(f"unknown consumer group {group!r}: subscribe it first")
        return self._groups[group]

    def _message(self, offset: int, attempt: int) -> Message:
        topic, stored = self._by_offset[offset]
        return Message(offset, topic, from_json(stored.body), stored.published_at, attempt)


def make_events(
    count: int, *, type: str = "com.example.test", source: str = "/tests"
) -> list[Event]:
    """``count`` fresh events (new ids), numbered in their data as ``{"n": i}``."""
    return [new_event(type, source, {"n": n}) for n in range(count)]


def _outgoing(settlement: Settlement) -> list[Event]:
    if isinstance(settlement, Ack):
        return [event for _, event in settlement.emit]
    if isinstance(settlement, DeadLetter):
        return [settlement.event]
    return []


def _encode(event: Event) -> bytes:
    problems = spec_problems(event)
    if problems:
        raise InvalidEventError(problems)
    return to_json(event)
