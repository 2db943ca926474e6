"""What came of delivering one event to a function.

One vocabulary for every destination (a worker over HTTP, a job process, a
Dapr sidecar), so the dispatcher's retry and dead-letter rules are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from cumulo.events.event import Event


@dataclass(frozen=True, slots=True)
class Success:
    replies: list[Event] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Transient: deliver again, after ``delay`` seconds or the trigger's backoff."""

    error_type: str
    message: str
    delay: float | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """The function failed; ``permanent`` failures skip the retries."""

    error_type: str
    message: str
    permanent: bool = False


Outcome = Success | RetryLater | Failure


class Destination(Protocol):
    """Where a trigger delivers: a function's worker pool, a job runner, a sidecar."""

    async def deliver(self, event: Event, *, timeout: float) -> Outcome: ...
