"""How a project's resources become running parts: bus URLs, implied triggers."""

from __future__ import annotations

from pathlib import Path

import orjson

from cumulo.config import Settings
from cumulo.events.bus import Bus, BusSettings, bus_from_url
from cumulo.events.bus.base import Message
from cumulo.events.event import to_json
from cumulo.spec.models import EventBus

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
    """The bus backend for a resource (not started yet)."""
    url = bus_url(bus, root, state, settings)
    extra = {"synchronous": settings.sqlite_synchronous} if url.startswith(SQLITE_PREFIX) else {}
    return bus_from_url(url, BusSettings(bus.spec.dedup_window, bus.spec.retention, extra))


def message_json(message: Message) -> dict[str, object]:
    """A message as the admin API and the CLI show it (the event in the JSON format)."""
    return {
        "offset": message.offset,
        "topic": message.topic,
        "publishedAt": message.published_at,
        "event": orjson.loads(to_json(message.event)),
    }
