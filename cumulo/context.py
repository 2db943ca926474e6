"""What a running function can ask about the run it is part of.

A job run (``mode: job``) has an id; ``cumulo runs`` lists it, and the ML
functions record it in the lineage of what they produce. Service workers
handle many events at once and have no run id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_run_id: ContextVar[str | None] = ContextVar("cumulo_run_id", default=None)


def current_run_id() -> str | None:
    """The id of the job run this code is part of, or ``None`` outside a job."""
    return _run_id.get()


@contextmanager
def running(run_id: str | None) -> Iterator[None]:
    """Make ``run_id`` the current run within the block."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)
