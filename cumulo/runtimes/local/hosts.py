"""What the platform needs of a function's processes, whatever its mode.

A service function's :class:`~cumulo.runtimes.local.pool.ServicePool` and a
job function's :class:`~cumulo.runtimes.local.jobs.JobRunner` both are one:
the platform starts, scales down, stops, counts and describes them through
this protocol, never by asking which one it holds.
"""

from __future__ import annotations

from typing import Any, Protocol

from cumulo.events.event import Event
from cumulo.events.outcome import Outcome
from cumulo.spec.models import Function


class FunctionHost(Protocol):
    function: Function

    async def deliver(self, event: Event, *, timeout: float) -> Outcome: ...

    async def start(self) -> None:
        """Start what the function keeps running (``scale.min`` replicas, say)."""

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
