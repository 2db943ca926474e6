"""Files in the state folder that a command or a request names: logs, by function and run.

A name taken from the CLI or HTTP never becomes a path on its own. A function's
log is found only for a function the project has; a run's log only for an id
shaped like one (``cumulo runs`` lists them), and in both cases the path,
symbolic links resolved, must lie inside the state folder. Refusals say which
rule refused and never show the resolved path::

    function_log(state, "train", project.functions)   # STATE/logs/train.log
    run_log(state, "20261122-101500-a1b2c3")          # STATE/runs/<id>/log.txt
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

from cumulo.errors import FunctionNotFoundError, StatePathError

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # the whole id: fullmatch
LOGS = "logs"
RUNS = "runs"
RUN_LOG = "log.txt"


def inside(state: Path, path: Path, what: str) -> Path:
    """``path`` resolved, if it lies inside ``state``; else :class:`StatePathError`."""
    root = state.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise StatePathError(f"{what} would lie outside the state folder: refused")
    return resolved


def known_function(name: str, functions: Collection[str]) -> str:
    """``name``, if the project has a function of that name; else :class:`FunctionNotFoundError`."""
    if name not in functions:
        known = ", ".join(sorted(functions)) or "none"
        raise FunctionNotFoundError(f"no such function '{name}' (the project has: {known})")
    return name


def function_log(state: Path, name: str, functions: Collection[str]) -> Path:
    """Where the workers of function ``name`` write their output."""
    known_function(name, functions)
    return inside(state, state / LOGS / f"{name}.log", f"the log of function '{name}'")


def run_log(state: Path, run_id: str) -> Path:
    """Where job run ``run_id`` writes its output."""
    if not RUN_ID.fullmatch(run_id):
        raise StatePathError(
            "a run id is 1-64 letters, digits, '-' or '_' (see `cumulo runs`): refused"
        )
    return inside(state, state / RUNS / run_id / RUN_LOG, f"the log of run '{run_id}'")


def recorded_run_log(state: Path, recorded: str) -> Path | None:
    """A run's log as ``runs.db`` records it, or ``None`` if it lies outside ``STATE/runs``."""
    try:
        return inside(state / RUNS, Path(recorded), "a run's log")
    except StatePathError:
        return None
