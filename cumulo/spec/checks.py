"""Checks across resources, run after each resource is valid on its own.

Names must be unique per kind; a trigger's function and bus, and a source's
sink, must exist (the ``default`` bus always does); a cron schedule must parse
and fire; a time zone must be known; a handler's module must be importable.
Nothing here runs user code: handler modules are *found*, never imported.
"""

from __future__ import annotations

import importlib.util
import sys
import zoneinfo
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path

from cumulo.errors import Problem
from cumulo.spec.models import CronSource, EventBus, EventSource, Function, Trigger
from cumulo.spec.problems import Located, Origin, unknown
from cumulo.spec.project import DEFAULT_BUS

_CRON_START = datetime(2000, 1, 1, tzinfo=UTC)


def check_project(located: Sequence[Located], project_dir: Path) -> list[Problem]:
    """Every cross-resource problem among ``located``."""
    return duplicate_names(located) + list(_references(located, project_dir))


def duplicate_names(located: Sequence[Located]) -> list[Problem]:
    """A problem for each resource whose kind and name were declared before."""
    first: dict[tuple[str, str], Origin] = {}
    problems: list[Problem] = []
    for item in located:
        kind = type(item.resource).__name__
        key = (kind, item.resource.name)
        if key in first:
            message = f"duplicate {kind} name '{key[1]}' (first declared at {first[key]})"
            problems.append(item.origin.problem("metadata.name", message))
        else:
            first[key] = item.origin
    return problems


def _references(located: Sequence[Located], project_dir: Path) -> Iterator[Problem]:
    functions = {i.resource.name for i in located if isinstance(i.resource, Function)}
    buses = {i.resource.name for i in located if isinstance(i.resource, EventBus)} | {DEFAULT_BUS}
    modules = ModuleFinder(project_dir)
    for item in located:
        resource, origin = item.resource, item.origin
        if isinstance(resource, Function):
            module = resource.spec.handler.partition(":")[0]
            if not modules.exists(module):
                yield origin.problem("spec.handler", f"cannot find module '{module}'")
        elif isinstance(resource, Trigger):
            if resource.spec.function not in functions:
                message = unknown("function", resource.spec.function, functions)
                yield origin.problem("spec.function", message)
            if resource.spec.bus not in buses:
                yield origin.problem("spec.bus", unknown("bus", resource.spec.bus, buses))
        elif isinstance(resource, EventSource):
            yield from _source_problems(resource, origin, functions, buses)


def _source_problems(
    source: EventSource, origin: Origin, functions: set[str], buses: set[str]
) -> Iterator[Problem]:
    sink = source.spec.sink
    if sink.bus not in buses:
        yield origin.problem("spec.sink.bus", unknown("bus", sink.bus, buses))
    if sink.function is not None and sink.function not in functions:
        message = unknown("function", sink.function, functions)
        yield origin.problem("spec.sink.function", message)
    if source.spec.cron is not None:
        yield from _cron_problems(source.spec.cron, origin)


def _cron_problems(cron: CronSource, origin: Origin) -> Iterator[Problem]:
    from croniter import CroniterBadDateError, CroniterError, croniter  # only for cron sources

    try:
        schedule = croniter(cron.schedule, _CRON_START)
    except (CroniterError, ValueError) as e:
        message = f"cannot parse cron schedule '{cron.schedule}': {e}"
        yield origin.problem("spec.cron.schedule", message)
    else:
        try:
            schedule.get_next(datetime)
        except CroniterBadDateError:
            yield origin.problem("spec.cron.schedule", f"'{cron.schedule}' never fires")
    if not is_time_zone(cron.timezone):
        message = unknown("time zone", cron.timezone, zoneinfo.available_timezones())
        yield origin.problem("spec.cron.timezone", message)


def is_time_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone key that :mod:`zoneinfo` knows."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


class ModuleFinder:
    """Finds modules on ``[project_dir, *sys.path]`` without importing them.

    ``importlib.util.find_spec("a.b")`` would import (run) package ``a``; this
    walks the package directories instead.
    """

    def __init__(self, project_dir: Path) -> None:
        self._path = [str(project_dir), *sys.path]
        self._found: dict[str, bool] = {}

    def exists(self, module: str) -> bool:
        """Whether ``module`` (dotted) can be found."""
        if module not in self._found:
            self._found[module] = self._find(module) is not None
        return self._found[module]

    def _find(self, module: str) -> ModuleSpec | None:
        head, *rest = module.split(".")
        spec = PathFinder.find_spec(head, self._path) or _find_elsewhere(head)
        for depth in range(1, len(rest) + 1):
            locations = spec.submodule_search_locations if spec else None
            if not locations:
                return None
            spec = PathFinder.find_spec(".".join([head, *rest[:depth]]), list(locations))
        return spec


def _find_elsewhere(name: str) -> ModuleSpec | None:
    """A top-level module from the other finders: built-ins, frozen, editable installs."""
    try:
        return importlib.util.find_spec(name)
    except ValueError:  # in sys.modules without a __spec__
        return None
