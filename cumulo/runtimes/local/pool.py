"""A service function's worker pool: from zero to ``scale.max`` replicas and back.

Requests go to the replica with the fewest in flight below ``scale.concurrency``;
when every replica is full and the pool is below max, a new one is forked from
the template while the request waits (one for what the replicas already
starting cannot take, not one per request). Replicas idle for
``scale.idleTimeout`` are stopped, down to ``scale.min``. A cloudevent
function's events that become ready together go to one replica in one request,
each answered as it finishes (:mod:`.batches`).

Faults stay with the event that caused them (:mod:`cumulo.runtimes.local.faults`):

- A request past its timeout gets its replica **recycled**: out of rotation at
  once, SIGTERM (requests in flight may finish), SIGKILL after ``grace``
  seconds. A handler stuck in user code cannot be cancelled, only killed; a
  worker left running would keep the stuck thread and, after ``concurrency``
  such timeouts, serve nothing at all. A recycled replica no longer counts
  towards ``scale.max``: its replacement starts at once.
- An event whose worker went away under it because of *another* event (a crash
  while the worker held several, or a recycle for another's timeout) is
  delivered again, once, **alone** on a fresh replica, within the same attempt.
  Alone, a crash is the event's own: ``WorkerCrashed``, retried by the
  trigger's policy.

Stopping a replica (scale-down, recycle, :meth:`ServicePool.stop`) is always
SIGTERM, then SIGKILL after ``grace``, to its whole process group.

On :meth:`ServicePool.reload` (new code) the template imports the function again
and every replica of the old code leaves rotation at once; each is stopped when
what it holds has finished (or after the function's timeout), so nothing in
flight is dropped and the next delivery runs on a replica of the new code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import time
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from cumulo.errors import WorkerStartError
from cumulo.events.cloudevent import batch_http, binary_http, check_sendable, http_message
from cumulo.events.event import Event
from cumulo.events.outcome import Failure, Outcome, RetryLater, Success
from cumulo.runtimes.local.batches import Coalescer, OutcomeLines
from cumulo.runtimes.local.faults import Claim, Lost, Replica, Watch, crash_failure
from cumulo.runtimes.local.hosts import HttpAnswer
from cumulo.runtimes.local.signals import signal_group
from cumulo.runtimes.local.template import Template
from cumulo.runtimes.local.wire import WireClient
from cumulo.runtimes.worker.contract import PROBLEM_JSON, outcome_from_response
from cumulo.runtimes.worker.deliveries import DELIVERIES_ROUTE
from cumulo.spec.models import Function

log = logging.getLogger("cumulo.pool")

DEFAULT_GRACE_SECONDS = 5.0
KILL_WAIT_SECONDS = 2.0


@dataclass
class PoolStats:
    cold_starts: int = 0
    crashes: int = 0
    invocations: int = 0
    errors: int = 0
    recycled: int = 0  # replicas stopped because a request timed out
    solo_retries: int = 0  # deliveries repeated alone after another event's fault
    reloads: int = 0  # times new code was loaded


class ServicePool:
    def __init__(
        self,
        function: Function,
        template: Template,
        client: WireClient,
        *,
        grace: float = DEFAULT_GRACE_SECONDS,
    ):
        self.function = function
        self.scale = function.spec.scale
        self.template = template
        self.client = client  # keep-alive connections to the replicas (:mod:`.wire`)
        self.grace = grace
        self.replicas: dict[int, Replica] = {}
        self.stats = PoolStats()
        self._watches: dict[int, Watch] = {}
        self._early_exits: dict[int, int] = {}  # exits reported before their spawn returned
        self._tokens = itertools.count(1)
        self._starting = 0
        self._stopping: set[int] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._draining: dict[int, Replica] = {}  # old code: out of rotation, finishing its work
        self._closing = False
        self._start_error: Exception | None = None
        self._start_failures = 0  # how many starts have failed, ever
        self._wanted = 0  # deliveries waiting in _acquire for room
        self._changed = asyncio.Condition()
        self._spawning: set[asyncio.Task[None]] = set()
        self._solo_slots = asyncio.Semaphore(self.scale.concurrency)
        self._batches: dict[float, Coalescer[tuple[Event, float], Outcome | Lost]] = {}

    @property
    def name(self) -> str:
        return self.function.name

    async def start(self) -> None:
        for _ in range(self.scale.min):
            await self._spawn()

    # --- delivering events ----------------------------------------------------

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        """Send one event (with those ready at the same time, for a cloudevent function);
        the worker's answer as an outcome."""
        if self.scale.concurrency > 1 and self.template.signature == "cloudevent":
            check_sendable(event)  # what the lone path's encoding refuses, refused alike
            outcome = await self._together(timeout).submit((event, timeout))
        else:
            outcome = await self._try(event, timeout, solo=False)
        if isinstance(outcome, Lost):
            log.info("%s: event %s lost %s; delivering it alone", self.name, event.id, outcome.why)
            self.stats.solo_retries += 1
            outcome = await self._try(event, timeout, solo=True)
        if isinstance(outcome, Lost):  # alone, nothing else can be to blame; never reached
            outcome = RetryLater("WorkerLost", outcome.why)
        self._count(outcome)
        return outcome

    def _message(self, event: Event) -> tuple[dict[str, str], bytes]:
        """All of the event for a cloudevent function; binary mode (its ``ce-*`` headers)
        for the others, which read the request as HTTP."""
        if self.template.signature == "cloudevent":
            return http_message(event)
        return binary_http(event)

    async def _try(self, event: Event, timeout: float, *, solo: bool) -> Outcome | Lost:
        headers, body = self._message(event)
        headers["accept"] = PROBLEM_JSON  # errors with their type and message
        try:
            async with (
                self._solo_slots if solo else contextlib.nullcontext(),
                self._claim(solo=solo) as claim,
            ):
                return await self._exchange(claim, headers, body, timeout)
        except WorkerStartError as e:
            return RetryLater(type(e).__name__, f"worker unreachable: {e}")

    async def _exchange(
        self, claim: Claim, headers: dict[str, str], body: bytes, timeout: float
    ) -> Outcome | Lost:
        port = claim.replica.port
        try:
            answer = await self.client.request(
                port, "POST", "/", headers.items(), body, timeout=timeout
            )
            return outcome_from_response(answer.status, dict(answer.headers), answer.body)
        except TimeoutError:
            if not self.recycle(claim):
                return Lost("its worker, recycled for another event's timeout")
            return RetryLater("Timeout", f"no answer within {timeout:g}s; the worker was recycled")
        except aiohttp.ClientError as e:
            return await self._worker_gone(claim, e)

    def _together(self, timeout: float) -> Coalescer[tuple[Event, float], Outcome | Lost]:
        """Events go together only with events of the same timeout (one request, one clock)."""
        batches = self._batches.get(timeout)
        if batches is None:
            batches = self._batches[timeout] = Coalescer(
                self._try_together, most=self.scale.concurrency
            )
        return batches

    async def _try_together(
        self, deliveries: Sequence[tuple[Event, float]]
    ) -> list[Outcome | Lost]:
        """Deliver events on one replica in one request (:mod:`.batches`); each one's outcome."""
        room = self._room()
        if len(deliveries) == 1 or room <= 1:  # one at a time, each waiting for a slot
            return await self._one_by_one(deliveries)
        if len(deliveries) > room:  # what fits now goes together, the rest after
            now, rest = deliveries[:room], deliveries[room:]
            first, then = await asyncio.gather(self._try_together(now), self._try_together(rest))
            return [*first, *then]
        events = [event for event, _ in deliveries]
        timeout = max(timeout for _, timeout in deliveries)
        message = batch_http(events)
        if len(message[1]) > self.template.config.max_body_bytes:  # over the worker's limit
            return await self._one_by_one(deliveries)
        try:
            async with self._claim(solo=False, weight=len(events)) as claim:
                return await self._exchange_together(claim, message, len(events), timeout)
        except WorkerStartError as e:
            return [RetryLater(type(e).__name__, f"worker unreachable: {e}")] * len(events)

    def _room(self) -> int:
        """The most deliveries one replica can take now (a replica yet to start: all)."""
        if not self.replicas:
            return self.scale.concurrency
        return max(self.scale.concurrency - r.inflight for r in self.replicas.values())

    async def _one_by_one(self, deliveries: Sequence[tuple[Event, float]]) -> list[Outcome | Lost]:
        singles = (self._try(event, timeout, solo=False) for event, timeout in deliveries)
        return list(await asyncio.gather(*singles))

    async def _exchange_together(
        self, claim: Claim, message: tuple[dict[str, str], bytes], count: int, timeout: float
    ) -> list[Outcome | Lost]:
        """Outcomes as the worker streams them; what it never answered is settled as
        :meth:`_exchange` settles one event (timeout, crash), or lost to the others."""
        headers, body = message
        answered: dict[int, Outcome | Lost] = {}
        missing: Outcome | Lost
        try:
            answer = await self.client.request(
                claim.replica.port, "POST", DELIVERIES_ROUTE, headers.items(), body,
                timeout=timeout, sink=OutcomeLines(answered).feed,
            )  # fmt: skip
        except TimeoutError:
            blamed = self.recycle(claim)
            late = count - len(answered)
            why = f"no answer within {timeout:g}s; the worker was recycled"
            alone = blamed and late == 1  # the one still running is the one to blame
            missing = RetryLater("Timeout", why) if alone else Lost("its worker, recycled")
        except aiohttp.ClientError as e:
            missing = await self._worker_gone(claim, e)
            late = count - len(answered)
            if isinstance(missing, Failure) and late > 1:  # a crash: whose, of these?
                missing = Lost(f"its worker, which went down with {late} events unanswered")
        else:
            if answer.status != 200:
                refused = outcome_from_response(answer.status, dict(answer.headers), answer.body)
                return [refused] * count
            missing = RetryLater("InvalidAnswer", "the worker did not answer every event")
        return [answered.get(index, missing) for index in range(count)]

    async def _worker_gone(self, claim: Claim, error: aiohttp.ClientError) -> Outcome | Lost:
        """The connection broke: did the worker die, and was it this event's doing?"""
        code = await claim.watch.exit_code()
        if code is None or self._closing:
            return RetryLater(type(error).__name__, f"worker unreachable: {error}")
        if claim.watch.crashed_on(claim.token):
            return crash_failure(code)
        return Lost(f"its worker, which went down with other events in flight (code {code})")

    def _count(self, outcome: Outcome) -> None:
        self.stats.invocations += 1
        if not isinstance(outcome, Success):
            self.stats.errors += 1

    # --- serving HTTP requests ------------------------------------------------

    async def request(
        self,
        method: str,
        path_and_query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout: float,
    ) -> HttpAnswer:
        """One HTTP request to a replica (started if needed), counted as an invocation;
        an answer of 500 or more counts as an error. A request that times out raises
        :class:`TimeoutError` and recycles its replica; a dropped one raises
        :class:`aiohttp.ClientError`. Both count as errors."""
        self.stats.invocations += 1
        try:
            async with self._claim(solo=False) as claim:
                answered = await self.client.request(
                    claim.replica.port,
                    method,
                    path_and_query,
                    headers.items(),
                    body,
                    timeout=timeout,
                )
        except (TimeoutError, aiohttp.ClientError):
            self.stats.errors += 1
            raise
        if answered.status >= 500:
            self.stats.errors += 1
        return answered

    # --- claiming replicas ----------------------------------------------------

    @contextlib.asynccontextmanager
    async def _claim(self, *, solo: bool, weight: int = 1) -> AsyncIterator[Claim]:
        """A replica for ``weight`` deliveries (a private one when ``solo``)."""
        if solo:
            replica, watch = await self._spawn_private()
        else:
            replica = await self._acquire(weight)
            watch = self._watches[replica.pid]  # a replica in rotation is watched
        claim = Claim(replica, watch, next(self._tokens))
        watch.holding.add(claim.token)
        try:
            yield claim
        except TimeoutError:
            self.recycle(claim)
            raise
        finally:
            watch.holding.discard(claim.token)
            replica.inflight -= weight
            replica.last_used = time.monotonic()
            if solo:
                self._retire(replica)
            async with self._changed:
                self._changed.notify()

    def recycle(self, claim: Claim) -> bool:
        """A request on ``claim`` timed out: recycle its replica; whether it is to blame."""
        if not claim.watch.blame(claim.token):
            return False
        if claim.replica.pid not in self._stopping:
            self.stats.recycled += 1
            log.warning(
                "%s: worker %d did not answer in time; recycling it", self.name, claim.replica.pid
            )
            self._retire(claim.replica)
        return True

    async def _acquire(self, weight: int = 1) -> Replica:
        """A replica with room for ``weight`` more deliveries, started if need be.

        A replica is started only for what the ones already starting cannot take
        (a burst at zero starts one, not one per request), and a caller whose own
        wait saw a start fail, with nothing running or starting, gets that failure
        instead of forking again and again."""
        most = self.scale.concurrency - weight  # a replica with room for all of them
        failures = self._start_failures
        async with self._changed:
            self._wanted += weight
            try:
                while True:
                    free = [r for r in self.replicas.values() if r.inflight <= most]
                    if free:
                        chosen = min(free, key=lambda r: r.inflight)
                        chosen.inflight += weight
                        return chosen
                    idle = not self.replicas and not self._starting
                    if self._start_failures > failures and idle:
                        raise WorkerStartError(str(self._start_error))
                    coming = self._starting * self.scale.concurrency
                    below_max = len(self.replicas) + self._starting < self.scale.max
                    if below_max and (self._wanted > coming or not self._starting):
                        self._starting += 1
                        spawning = asyncio.create_task(self._spawn(counted=True))
                        self._spawning.add(spawning)
                        spawning.add_done_callback(self._spawning.discard)
                    await self._changed.wait()
            finally:
                self._wanted -= weight

    async def _spawn_private(self) -> tuple[Replica, Watch]:
        """A fresh replica, out of rotation, for one delivery (a solo retry)."""
        replica, watch = self._register(*await self.template.spawn_worker())
        replica.inflight = 1
        return replica, watch

    # --- starting and stopping replicas ---------------------------------------

    async def _spawn(self, counted: bool = False) -> None:
        try:
            replica, watch = self._register(*await self.template.spawn_worker())
            if not watch.exited.done():
                self.replicas[replica.pid] = replica
            self.stats.cold_starts += 1
            self._start_error = None
        except WorkerStartError as e:
            log.error("%s: could not start a worker: %s", self.name, e)
            self._start_error = e
            self._start_failures += 1
        finally:
            self._starting -= counted
            async with self._changed:
                self._changed.notify_all()

    def _register(self, pid: int, port: int) -> tuple[Replica, Watch]:
        """Watch a new worker (one whose exit was already reported is not kept)."""
        watch = Watch(asyncio.get_running_loop().create_future())
        if pid in self._early_exits:
            watch.exit(self._early_exits.pop(pid))
        else:
            self._watches[pid] = watch
        return Replica(pid, port), watch

    def on_exit(self, pid: int, code: int) -> None:
        """The template saw a worker exit: forget it; count it if we did not stop it."""
        if (replica := self.replicas.pop(pid, None)) is not None:
            self.client.forget(replica.port)
        watch = self._watches.pop(pid, None)
        if watch is None:
            self._early_exits[pid] = code
        else:
            watch.exit(code)
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
                self._retire(replica)

    def _retire(self, replica: Replica) -> None:
        """Out of rotation now; SIGTERM, then SIGKILL if it still runs after ``grace``."""
        self.replicas.pop(replica.pid, None)
        watch = self._watches.get(replica.pid)
        if watch is None or replica.pid in self._stopping:
            return  # gone already, or on its way
        self._stopping.add(replica.pid)
        signal_group(replica.pid, signal.SIGTERM)
        self._background_retire(self._kill_after_grace(replica.pid, watch))

    async def _kill_after_grace(self, pid: int, watch: Watch) -> None:
        if await watch.exit_code(self.grace) is not None:
            return
        log.warning(
            "%s: worker %d still runs %gs after SIGTERM; killing it", self.name, pid, self.grace
        )
        signal_group(pid, signal.SIGKILL)
        await watch.exit_code(KILL_WAIT_SECONDS)

    async def reload(self) -> None:
        """New code: the template imports it; replicas of the old code finish, then go."""
        await self.template.reload()
        self.stats.reloads += 1
        for replica in list(self.replicas.values()):
            self._draining[replica.pid] = self.replicas.pop(replica.pid)
            self._background_retire(self._retire_when_done(replica))
        async with self._changed:
            self._changed.notify_all()
        for _ in range(self.scale.min - len(self.replicas) - self._starting):
            await self._spawn()

    async def _retire_when_done(self, replica: Replica) -> None:
        """Stop ``replica`` once it holds nothing (at most the function's timeout from now)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: replica.inflight <= 0 or self._closing),
                    self.function.spec.timeout,
                )
        self._draining.pop(replica.pid, None)
        self._retire(replica)

    def _background_retire(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def workers(self) -> int:
        return len(self.replicas)

    def cold_starts(self) -> int | None:
        return self.stats.cold_starts

    def describe(self) -> dict[str, Any]:
        return {"replicas": [asdict(r) for r in self.replicas.values()], **asdict(self.stats)}

    async def stop(self) -> None:
        """Stop every replica (SIGKILL after ``grace``) and wait for them to go."""
        self._closing = True
        for replica in [*self.replicas.values(), *self._draining.values()]:
            self._retire(replica)
        async with self._changed:
            self._changed.notify_all()  # the draining ones stop waiting
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
