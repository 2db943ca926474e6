"""How a project's resources become running parts: bus URLs, and the extras they need.

:func:`missing_extras` is what ``cumulo up`` checks before it starts anything:
every bus, source and Cumulo handler the project names whose optional library
is not installed, as ``Kind/name:path: message`` problems that name the extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from cumulo.config import Settings
from cumulo.errors import MissingExtraError, Problem, SpecError, UnknownBackendError
from cumulo.events.bus import Bus, BusSettings, backend_for, bus_from_url
from cumulo.events.bus.base import Message
from cumulo.events.event import to_json
from cumulo.extras import HANDLER_MODULE_EXTRAS, installed, missing
from cumulo.spec import Project
from cumulo.spec.models import EventBus, EventSource, Function

SQLITE_PREFIX = "sqlite:///"


def bus_url(bus: EventBus, root: Path, state: Path, settings: Settings) -> str:
    """The bus's URL; the embedded default lives in the state directory.

    A relative SQLite path is relative to the project, not to where the
    command was started.
    """
    url = bus.spec.url or (settings.bus_url if bus.name == "default" else None)
    if url is None:
        return f"{SQLITE_PREFIX}{(state / 'bus.db').resolve()}"
    if url.startswith(SQLITE_PREFIX) and not url.startswith(SQLITE_PREFIX + "/"):
        return f"{SQLITE_PREFIX}{(root / url[len(SQLITE_PREFIX) :]).resolve()}"
    return url


def open_bus(bus: EventBus, root: Path, state: Path, settings: Settings) -> Bus:
    """The bus backend for a resource (not started yet).

    A client library missing for the spec's own URL is a :class:`SpecError` at
    ``EventBus/<name>:spec.url``; for ``CUMULO_BUS_URL``, a :class:`MissingExtraError`.
    """
    url = bus_url(bus, root, state, settings)
    extra = {"synchronous": settings.sqlite_synchronous} if url.startswith(SQLITE_PREFIX) else {}
    try:
        return bus_from_url(url, BusSettings(bus.spec.dedup_window, bus.spec.retention, extra))
    except MissingExtraError as e:
        if bus.spec.url is None:
            raise
        raise SpecError([Problem(f"EventBus/{bus.name}", "spec.url", str(e))]) from e


def missing_extras(project: Project) -> list[Problem]:
    """Each bus, source and Cumulo handler of ``project`` whose extra is not installed.

    Only what the specs say: a default bus from ``CUMULO_BUS_URL`` is checked
    when it is opened (:func:`open_bus`).
    """
    return [
        *(p for bus in project.buses.values() for p in _bus_needs(bus)),
        *(p for source in project.sources.values() for p in _source_needs(source)),
        *(p for function in project.functions.values() for p in _handler_needs(function)),
    ]


def _problem(where: str, path: str, extra: str, needed_by: str) -> Iterator[Problem]:
    if not installed(extra):
        yield Problem(where, path, str(missing(extra, needed_by=needed_by)))


def _bus_needs(bus: EventBus) -> Iterator[Problem]:
    url = bus.spec.url
    if url is None:
        return
    try:
        backend = backend_for(url)
    except UnknownBackendError:
        return  # open_bus names the known schemes
    where, scheme = f"EventBus/{bus.name}", backend.schemes[0]
    if backend.extra is not None:
        yield from _problem(where, "spec.url", backend.extra, f"{scheme}://")
    broker = parse_qs(urlsplit(url).query).get("broker", [""])[0]
    if scheme == "dapr" and broker.startswith("redis"):  # the platform lists its topics
        yield from _problem(where, "spec.url", "redis", "a dapr:// bus on a redis:// broker")


def _source_needs(source: EventSource) -> Iterator[Problem]:
    where = f"EventSource/{source.name}"
    if source.spec.kafka is not None:
        yield from _problem(where, "spec.kafka", "kafka", "a Kafka source")
    if source.spec.s3 is not None and source.spec.s3.mode == "poll":
        yield from _problem(where, "spec.s3.mode", "s3", "S3 poll mode")


def _handler_needs(function: Function) -> Iterator[Problem]:
    module = function.spec.handler.partition(":")[0]
    extra = HANDLER_MODULE_EXTRAS.get(module)
    if extra is not None:
        yield from _problem(f"Function/{function.name}", "spec.handler", extra, module)


def message_json(message: Message) -> dict[str, object]:
    """A message as the admin API and the CLI show it (the event in the JSON format)."""
    return {
        "offset": message.offset,
        "topic": message.topic,
        "publishedAt": message.published_at,
        "event": orjson.loads(to_json(message.event)),
    }
