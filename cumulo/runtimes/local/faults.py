"""Whose fault was it? What a service pool knows of each worker process it started.

A worker can fail under several events at once: it crashes, or it is recycled
because one of them hung. :class:`Watch` records which deliveries a worker held
and which of them, if any, it was recycled for, so the pool can tell the event
that caused a fault from the ones that only shared the worker with it:

- a delivery that **timed out** is to blame for its worker's recycling, unless
  the worker was already being recycled for another delivery's timeout;
- a worker that **exited** while it held only one delivery (and was not
  recycled for another) crashed on that delivery;
- every other delivery the worker held when it went away was *lost* through
  no fault of its own: the pool re-delivers it once, alone, on a fresh worker
  (:meth:`~cumulo.runtimes.local.pool.ServicePool.deliver`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field

from cumulo.events.outcome import Failure

EXIT_WAIT_SECONDS = 2.0  # how long a dropped connection waits for the worker's exit report


@dataclass
class Watch:
    """One worker process: its exit, the deliveries it holds, the one it was recycled for."""

    exited: asyncio.Future[int]
    holding: set[int] = field(default_factory=set)
    held_at_exit: frozenset[int] = frozenset()
    blamed: int | None = None

    def exit(self, code: int) -> None:
        """The process is gone: remember what it held at that moment."""
        self.held_at_exit = frozenset(self.holding)
        if not self.exited.done():
            self.exited.set_result(code)

    async def exit_code(self, wait: float = EXIT_WAIT_SECONDS) -> int | None:
        """The process's exit code, waiting up to ``wait`` seconds for it; None if it runs on."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), wait)
        except TimeoutError:
            return None

    def blame(self, token: int) -> bool:
        """Blame ``token`` for a timeout unless another is blamed already; whether it is now."""
        if self.blamed is None:
            self.blamed = token
        return self.blamed == token

    def crashed_on(self, token: int) -> bool:
        """Whether the exit is ``token``'s fault: it was alone and not a bystander of a recycle."""
        return self.blamed in (None, token) and self.held_at_exit == {token}


@dataclass
class Replica:
    """A worker in a pool: where it listens, how busy it is (``/api/status`` shows these)."""

    pid: int
    port: int
    inflight: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Claim:
    """One request's hold on a replica."""

    replica: Replica
    watch: Watch
    token: int


@dataclass(frozen=True)
class Lost:
    """A delivery that went down with a worker another event brought down."""

    why: str


def crash_failure(code: int) -> Failure:
    """The outcome of an event its worker died on (retried per the trigger's policy)."""
    if code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        how = f"was killed by signal {-code}{name}"
    else:
        how = f"exited with code {code}"
    return Failure("WorkerCrashed", f"the worker {how} while handling this event")
