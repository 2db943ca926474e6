"""Save and see: what ``cumulo up`` does when the project's files change under it.

:func:`project_edits` watches the project folder (watchfiles: inotify, not
polling) and yields each burst of saved ``.py`` and YAML files. The platform
then loads the project again and :func:`plan_reload` compares it with the one
running:

- a function whose spec is the same but whose code changed (a file its
  template imported, :attr:`.template.Template.sources`) is *reloaded*: its
  template imports the code again in place and its replicas are replaced once
  their work is done (:meth:`.pool.ServicePool.reload`);
- a function whose spec changed is *replaced*: a new template and host start,
  take its requests and triggers, and the old ones stop once done;
- functions, triggers and sources added or removed start or stop; a trigger or
  source whose spec changed, or whose function was replaced, is restarted on the
  same consumer group, so nothing accepted is skipped;
- what cannot change while the platform runs (the buses) is reported, and
  applies at the next ``cumulo up``.

A project that no longer loads, or code that no longer imports, changes
nothing: the old keeps serving and the error is shown (log line and
``/api/status``'s ``reload``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchfiles import Change, DefaultFilter, awatch

from cumulo.spec import Project
from cumulo.spec.models import Function

WATCHED_SUFFIXES = (".py", ".yaml", ".yml")
STEP_MS = 30  # a burst of saves is over once nothing changed for this long
MAX_BURST_MS = 1000  # ... or after this, whatever still changes


@dataclass(frozen=True)
class Edits:
    """Files saved together (written, created or deleted)."""

    files: frozenset[Path]

    @property
    def code(self) -> frozenset[Path]:
        return frozenset(f for f in self.files if f.suffix == ".py")


async def project_edits(
    root: Path, *, ignore: Sequence[Path] = (), stop: asyncio.Event | None = None
) -> AsyncIterator[Edits]:
    """Each burst of saves of the project's ``.py`` and YAML files, until ``stop`` is set.

    Hidden tool folders (``.venv``, ``.git``, ``__pycache__``, ...) and ``ignore``
    (the state folder) are not watched."""
    default = DefaultFilter(ignore_paths=[str(path) for path in ignore])

    def wanted(change: Change, path: str) -> bool:
        return path.endswith(WATCHED_SUFFIXES) and default(change, path)

    changes: set[tuple[Change, str]]
    async for changes in awatch(
        root, watch_filter=wanted, step=STEP_MS, debounce=MAX_BURST_MS, stop_event=stop
    ):
        yield Edits(frozenset(Path(path).absolute() for _, path in changes))


@dataclass(frozen=True)
class ReloadPlan:
    """What to change in a running platform to make it run the new project."""

    reload: tuple[str, ...] = ()  # functions: same spec, new code
    replace: tuple[str, ...] = ()  # functions: new spec
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    stop_triggers: tuple[str, ...] = ()  # by trigger name, in the running project
    start_triggers: tuple[str, ...] = ()  # by trigger name, in the new project
    stop_sources: tuple[str, ...] = ()
    start_sources: tuple[str, ...] = ()
    not_applied: tuple[str, ...] = ()  # needs the next `cumulo up`

    @property
    def empty(self) -> bool:
        return not any(
            (self.reload, self.replace, self.add, self.remove, self.stop_triggers,
             self.start_triggers, self.stop_sources, self.start_sources, self.not_applied)
        )  # fmt: skip

    def summary(self) -> str:
        """One line: what changed, for the log and ``/api/status``."""
        parts = [
            *(f"{name} runs its new code" for name in self.reload),
            *(f"{name} restarted with its new spec" for name in self.replace),
            *(f"function {name} added" for name in self.add),
            *(f"function {name} removed" for name in self.remove),
            *_changed("trigger", self.stop_triggers, self.start_triggers),
            *_changed("source", self.stop_sources, self.start_sources),
        ]
        return "; ".join(parts) or "nothing to change"


def _changed(kind: str, stopped: Sequence[str], started: Sequence[str]) -> list[str]:
    both = [name for name in started if name in stopped]
    return [
        *(f"{kind} {name} restarted" for name in both),
        *(f"{kind} {name} added" for name in started if name not in both),
        *(f"{kind} {name} removed" for name in stopped if name not in started),
    ]


def _runs_alike(old: Function, new: Function) -> bool:
    """Whether the two need the same processes: equal but for their inline triggers."""

    def processes(function: Function) -> dict[str, object]:
        return function.model_dump(exclude={"spec": {"triggers"}})

    return processes(old) == processes(new)


def plan_reload(
    running: Project,
    new: Project,
    code: frozenset[Path],
    sources: Mapping[str, frozenset[Path]],
) -> ReloadPlan:
    """What turns ``running`` into ``new``, after ``code`` was saved.

    ``sources`` are the files each running function's template imported; a
    function missing from it (its template never loaded) takes any code change."""
    old_fns, new_fns = running.functions, new.functions
    kept = [name for name in old_fns if name in new_fns]
    replace = tuple(name for name in kept if not _runs_alike(old_fns[name], new_fns[name]))
    reload = tuple(
        name for name in kept if name not in replace and code and (code & sources.get(name, code))
    )
    add = tuple(name for name in new_fns if name not in old_fns)
    remove = tuple(name for name in old_fns if name not in new_fns)
    moved = {*replace, *add, *remove}

    old_triggers, new_triggers = running.all_triggers(), new.all_triggers()
    stop_triggers = tuple(
        name
        for name, trigger in old_triggers.items()
        if new_triggers.get(name) != trigger or trigger.spec.function in moved
    )
    start_triggers = tuple(
        name
        for name, trigger in new_triggers.items()
        if old_triggers.get(name) != trigger or trigger.spec.function in moved
    )
    stop_sources = tuple(
        name for name, source in running.sources.items() if new.sources.get(name) != source
    )
    start_sources = tuple(
        name for name, source in new.sources.items() if running.sources.get(name) != source
    )
    not_applied = tuple(
        f"event bus {name} changed: it applies at the next `cumulo up`"
        for name in sorted({*running.buses, *new.buses})
        if running.buses.get(name) != new.buses.get(name)
    )
    return ReloadPlan(
        reload, replace, add, remove, stop_triggers, start_triggers, stop_sources,
        start_sources, not_applied,
    )  # fmt: skip
