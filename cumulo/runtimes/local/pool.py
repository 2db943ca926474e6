"""A service function's worker pool: from zero to ``scale.max`` replicas and back.

Requests go to the replica with the fewest in flight below ``scale.concurrency``;
when every replica is full and the pool is below max, a new one is forked from
the template while the request waits. Replicas idle for ``scale.idleTimeout``
are stopped, down to ``scale.min``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from cumulo.errors import WorkerStartError
from cumulo.events.cloudevent import binary_http
from cumulo.events.event import Event
from cumulo.events.outcome import Outcome, RetryLater, Success
from cumulo.runtimes.local.template import Template
from cumulo.runtimes.worker.contract import outcome_from_response
from cumulo.spec.models import Function

log = logging.getLogger("cumulo.pool")


@dataclass
class Replica:
    pid: int
    port: int
    inflight: int = 0
    last_used: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class PoolStats:
    cold_starts: int = 0
    crashes: int = 0
    invocations: int = 0
    errors: int = 0


class ServicePool:
    def __init__(self, function: Function, template: Template, session: aiohttp.ClientSession):
        self.function = function
        self.scale = function.spec.scale
        self.template = template
        self.session = session
        self.replicas: dict[int, Replica] = {}
        self.stats = PoolStats()
        self._starting = 0
        self._stopping: set[int] = set()
        self._start_error: Exception | None = None
        self._changed = asyncio.Condition()
        self._spawning: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.function.name

    async def start(self) -> None:
        for _ in range(self.scale.min):
            await self._spawn()

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        """Send one event in binary mode; the worker's answer as an outcome."""
        headers, body = binary_http(event)
        try:
            async with (
                self.replica() as replica,
                self.session.post(
                    replica.url + "/",
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response,
            ):
                outcome = outcome_from_response(
                    response.status, response.headers, await response.read()
                )
        except TimeoutError:
            outcome = RetryLater("Timeout", f"no answer within {timeout:g}s")
        except (aiohttp.ClientError, WorkerStartError) as e:
            outcome = RetryLater(type(e).__name__, f"worker unreachable: {e}")
        self._count(outcome)
        return outcome

    def _count(self, outcome: Outcome) -> None:
        self.stats.invocations += 1
        if not isinstance(outcome, Success):
            self.stats.errors += 1

    @contextlib.asynccontextmanager
    async def replica(self) -> AsyncIterator[Replica]:
        """A replica with room for one more request, starting one if needed."""
        replica = await self._acquire()
        replica.inflight += 1
        try:
            yield replica
        finally:
            replica.inflight -= 1
            replica.last_used = time.monotonic()
            async with self._changed:
                self._changed.notify()

    async def _acquire(self) -> Replica:
        async with self._changed:
            while True:
                free = [r for r in self.replicas.values() if r.inflight < self.scale.concurrency]
                if free:
                    return min(free, key=lambda r: r.inflight)
                if len(self.replicas) + self._starting < self.scale.max:
                    self._starting += 1
                    spawning = asyncio.create_task(self._spawn(counted=True))
                    self._spawning.add(spawning)
                    spawning.add_done_callback(self._spawning.discard)
                elif self._start_error and not self.replicas and not self._starting:
                    raise WorkerStartError(str(self._start_error))
                await self._changed.wait()

    async def _spawn(self, counted: bool = False) -> None:
        try:
            pid, port = await self.template.spawn_worker()
            self.replicas[pid] = Replica(pid, port)
            self.stats.cold_starts += 1
            self._start_error = None
        except WorkerStartError as e:
            log.error("%s: could not start a worker: %s", self.name, e)
            self._start_error = e
        finally:
            self._starting -= counted
            async with self._changed:
                self._changed.notify_all()

    def on_exit(self, pid: int, code: int) -> None:
        """The template saw a worker exit: forget it; count it if we did not stop it."""
        self.replicas.pop(pid, None)
        if pid not in self._stopping:
            self.stats.crashes += 1
            log.warning("%s: worker %d exited unexpectedly (code %d)", self.name, pid, code)
        self._stopping.discard(pid)

    async def scale_down_idle(self) -> None:
        """Stop replicas idle past the timeout, keeping ``scale.min``."""
        now = time.monotonic()
        idle = sorted(
            (r for r in self.replicas.values() if not r.inflight),
            key=lambda r: r.last_used,
        )
        for replica in idle:
            if len(self.replicas) <= self.scale.min:
                return
            if now - replica.last_used >= self.scale.idle_timeout:
                self._stop_replica(replica)

    def _stop_replica(self, replica: Replica) -> None:
        self.replicas.pop(replica.pid, None)
        self._stopping.add(replica.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(replica.pid, signal.SIGTERM)

    async def stop(self) -> None:
        for replica in list(self.replicas.values()):
            self._stop_replica(replica)
