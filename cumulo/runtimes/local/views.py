"""The narrow views of a running platform that its parts are handed.

The platform (:mod:`.platform`) is the composition root: it builds the buses,
the function hosts and the triggers' deliveries, and hands each part only the
mappings and callables it reads, never itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from cumulo.events.engine import TriggerStats
from cumulo.spec.models import Trigger

Status = Callable[[], Awaitable[dict[str, Any]]]  # what GET /api/status answers
RunCounts = Callable[[], dict[tuple[str, str], int]]  # finished job runs by (function, status)


class TriggerView(Protocol):
    """A trigger being delivered, pulled (a dispatcher) or pushed (an embedded Dapr bus)."""

    @property
    def trigger(self) -> Trigger: ...

    @property
    def stats(self) -> TriggerStats: ...

    @property
    def inflight(self) -> int: ...
