"""Signalling a function's process and everything it started.

Each worker and job forked by the template leads a process group of its own
(:mod:`cumulo.runtimes.local.forkserver`; the template sets it before it tells
the supervisor the pid), so a signal to the group also reaches the
subprocesses user code started: nothing it spawned outlives it.
"""

from __future__ import annotations

import contextlib
import os


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pid`` leads; nothing if it is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
