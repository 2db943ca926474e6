"""What the platform needs of a function's processes, whatever its mode.

A service function's :class:`~cumulo.runtimes.local.pool.ServicePool` and a
job function's :class:`~cumulo.runtimes.local.jobs.JobRunner` both are one:
the platform starts, scales down, stops, counts and describes them, and the
gateway sends them HTTP requests, through this protocol, never by asking
which one it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cumulo.events.event import Event
from cumulo.events.outcome import Outcome
from cumulo.spec.models import Function


@dataclass(frozen=True)
class HttpAnswer:
    """A function's whole answer to one HTTP request."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class FunctionHost(Protocol):
    function: Function

    async def deliver(self, event: Event, *, timeout: float) -> Outcome:
        """Run the function on one event (a trigger's delivery)."""

    async def request(
        self,
        method: str,
        path_and_query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout: float,
    ) -> HttpAnswer:
        """Serve one HTTP request to the function (``/fn/<name>``), counted.

        Raises :class:`~cumulo.errors.InvalidEventError` for a request the function
        cannot take, :class:`TimeoutError` past ``timeout`` and
        :class:`aiohttp.ClientError` when its worker dropped the request."""

    async def start(self) -> None:
        """Start what the function keeps running (``scale.min`` replicas, say)."""

    async def reload(self) -> None:
        """The function's code changed: the next delivery or request runs the new code,
        and what is in flight finishes on the old. Raises
        :class:`~cumulo.errors.ReloadError` when the new code does not load (the old
        keeps serving)."""

    async def scale_down_idle(self) -> None:
        """Let go of what has been idle past its timeout."""

    async def stop(self) -> None:
        """Stop every process of the function."""

    def on_exit(self, pid: int, code: int) -> None:
        """One of its processes exited (its template reports it)."""

    def workers(self) -> int:
        """How many processes run the function now."""

    def cold_starts(self) -> int | None:
        """How many replicas were started; ``None`` where there are no replicas (jobs)."""

    def describe(self) -> dict[str, Any]:
        """Its part of the function's entry in ``/api/status``."""
