"""Shared pieces for the events layer's unit tests.

- :func:`make_trigger`: a Trigger from spec fields (camelCase or snake_case).
- :class:`ScriptedHost`: a fake function host (``deliver(event, timeout=) -> Outcome``)
  that answers from a script, records each call, and can hold deliveries open.
- :class:`FaultyBus`: the in-package :class:`~cumulo.testing.MemoryBus`, with chosen
  calls failing the way a broker does (fault injection only; the semantics are MemoryBus's).
- :func:`running`: a dispatcher's ``run()`` as a task, stopped as the platform stops it.
- :func:`wait_until` / :func:`loop_turns`: bounded waits on a condition, never fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest

from cumulo.events import dispatcher as dispatcher_module
from cumulo.events import engine as engine_module
from cumulo.events.bus.base import Accept, BusSettings, Message, Settlement, StartAt
from cumulo.events.dispatcher import TriggerDispatcher
from cumulo.events.event import Event
from cumulo.events.outcome import Outcome, Success
from cumulo.spec.models import Metadata, Trigger, TriggerSpec
from cumulo.testing import MemoryBus

REAL_SLEEP = asyncio.sleep  # kept: a test may replace asyncio.sleep to watch backoffs

Answer = Outcome | BaseException | Callable[[Event], Outcome]


def make_trigger(name: str = "orders", *, function: str = "fn", **spec: Any) -> Trigger:
    """A trigger named ``name`` for ``function``, with the given spec fields."""
    return Trigger(
        metadata=Metadata(name=name),
        spec=TriggerSpec.model_validate({"function": function, **spec}),
    )


class ScriptedHost:
    """A function host that answers deliveries from a script, then with ``default``.

    Each script entry is an outcome, an exception to raise, or a callable of the
    event. While :meth:`hold` is in force every delivery waits for :meth:`release`.
    """

    def __init__(self, *script: Answer, default: Outcome | None = None) -> None:
        self.script: list[Answer] = list(script)
        self.default: Outcome = default if default is not None else Success()
        self.calls: list[tuple[Event, float]] = []
        self.running = 0
        self.most_running = 0
        self._open = asyncio.Event()
        self._open.set()

    @property
    def events(self) -> list[Event]:
        """The events delivered so far, in call order."""
        return [event for event, _ in self.calls]

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        self.calls.append((event, timeout))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self._open.wait()
            answer = self.script.pop(0) if self.script else self.default
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer):
                return answer(event)
            return answer
        finally:
            self.running -= 1


class FaultyBus(MemoryBus):
    """A MemoryBus whose next calls of a method raise the exceptions queued with :meth:`fail`.

    Every call of ``subscribe``, ``fetch``, ``settle`` and ``wait`` is recorded
    (its arguments) in :attr:`calls`, failed or not.
    """

    def __init__(self, *, bus_settings: BusSettings | None = None) -> None:
        super().__init__(bus_settings=bus_settings)
        self.faults: dict[str, list[BaseException]] = defaultdict(list)
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def fail(self, method: str, *errors: BaseException) -> None:
        self.faults[method].extend(errors)

    def _call(self, method: str, **arguments: Any) -> None:
        self.calls[method].append(arguments)
        if self.faults[method]:
            raise self.faults[method].pop(0)

    async def subscribe(self, group: str, topic: str, *, start: StartAt = "latest") -> None:
        self._call("subscribe", group=group, topic=topic, start=start)
        await super().subscribe(group, topic, start=start)

    async def fetch(
        self, group: str, *, limit: int, lease: float, accept: Accept | None = None
    ) -> list[Message]:
        self._call("fetch", group=group, limit=limit, lease=lease)
        return await super().fetch(group, limit=limit, lease=lease, accept=accept)

    async def settle(self, group: str, settlements: Sequence[Settlement]) -> None:
        self._call("settle", group=group, settlements=list(settlements))
        await super().settle(group, settlements)

    async def wait(self, group: str, timeout: float) -> None:
        self._call("wait", group=group, timeout=timeout)
        await super().wait(group, timeout)


class Clock:
    """A wall clock that a test moves forward: real time plus :attr:`ahead` seconds."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead


async def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Return once ``predicate()`` holds; fail the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await REAL_SLEEP(0.002)


async def loop_turns(turns: int = 50) -> None:
    """Let every ready task run ``turns`` times (no wall-clock wait)."""
    for _ in range(turns):
        await REAL_SLEEP(0)


@contextlib.asynccontextmanager
async def running(
    dispatcher: TriggerDispatcher, *, joined: bool = True
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``dispatcher`` in a task; on exit cancel it, release its host and drain, as on stop."""
    task = asyncio.create_task(dispatcher.run())
    try:
        if joined:
            async with asyncio.timeout(2):
                await dispatcher.joined.wait()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        host = dispatcher.engine.destination
        if isinstance(host, ScriptedHost):
            host.release()
        await dispatcher.drain(2.0)


@pytest.fixture
def bus() -> FaultyBus:
    """A fresh in-memory bus (no faults queued)."""
    return FaultyBus()


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatcher's idle and reconnect pauses shortened, so fault paths run quickly."""
    monkeypatch.setattr(dispatcher_module, "IDLE_POLL_SECONDS", 0.01)
    monkeypatch.setattr(dispatcher_module, "MAX_RECONNECT_SECONDS", 0.04)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The delivery engine's wall clock, which the test can move forward."""
    moved = Clock()
    monkeypatch.setattr(engine_module, "time", moved)
    return moved
