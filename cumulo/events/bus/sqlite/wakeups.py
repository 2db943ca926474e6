"""Waking coroutines on any event loop from the writer thread: doorbells and futures."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any


def resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    """Settle ``future`` (call it on the future's loop); one whose caller gave up is left alone."""
    if future.done():  # the caller was cancelled
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


class Doorbell:
    """Tells coroutines, on any event loop, that one group may have work.

    The writer thread rings it after a commit that published to the group's topic.
    It stays rung until the group's next fetch, so a publish landing between a
    fetch and the following ``wait`` is not missed. A bell whose topic is not
    known yet rings for every topic. ``next_due`` is the group's earliest retry
    or lease expiry as of its last fetch or settle.
    """

    def __init__(self, topic: str | None, *, rung: bool):
        self.topic = topic
        self._lock = threading.Lock()
        self._rung = rung
        self._next_due: float | None = None
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    @property
    def rung(self) -> bool:
        """Whether the bell has rung since it was last cleared."""
        with self._lock:
            return self._rung

    def ring(self) -> None:
        """Wake every waiter, and every later one until :meth:`clear`."""
        with self._lock:
            self._rung = True
            self._wake_all()

    def clear(self) -> None:
        """A fetch is looking at everything: later waiters sleep until the next ring."""
        with self._lock:
            self._rung = False

    def set_due(self, due: float | None) -> None:
        """The group's earliest retry or lease expiry (Unix time); waiters sleep until then."""
        with self._lock:
            self._next_due = due
            self._wake_all()  # they recompute how long to sleep

    async def wait(self, timeout: float) -> None:
        """Return when rung, when the next due time comes, or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            with self._lock:
                if self._rung:
                    return
                pause = min(deadline - time.monotonic(), self._until_due())
                if pause <= 0:
                    return
                self._waiters.add((loop, woken))
            try:
                await asyncio.wait_for(woken, pause)
            except TimeoutError:
                return
            finally:
                with self._lock:
                    self._waiters.discard((loop, woken))

    def _until_due(self) -> float:
        return float("inf") if self._next_due is None else self._next_due - time.time()

    def _wake_all(self) -> None:
        for loop, woken in self._waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(resolve, woken, None, None)


class Doorbells:
    """The doorbells of the groups this process consumes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bells: dict[str, Doorbell] = {}

    def get(self, group: str) -> Doorbell | None:
        """The group's bell, if this process has one."""
        with self._lock:
            return self._bells.get(group)

    def bell(self, group: str, topic: str | None, *, rung: bool) -> Doorbell:
        """The group's bell; a new one is rung when nobody knows what the group has."""
        with self._lock:
            bell = self._bells.setdefault(group, Doorbell(topic, rung=rung))
            bell.topic = bell.topic or topic
            return bell

    def ring_topics(self, topics: set[str]) -> None:
        """Ring the bells of the groups on ``topics``, and those whose topic is not known yet."""
        if not topics:
            return
        with self._lock:
            bells = [
                bell for bell in self._bells.values() if bell.topic in topics or not bell.topic
            ]
        for bell in bells:
            bell.ring()
