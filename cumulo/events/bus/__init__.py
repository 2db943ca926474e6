"""The event bus: one contract (:mod:`.base`), one backend module per broker.

:func:`bus_from_url` picks the backend by URL scheme from an explicit table and
imports it only then, so an optional broker client is needed only by those who
use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cumulo.errors import UnknownBackendError
from cumulo.events.bus.base import (
    Ack,
    Bus,
    BusSettings,
    DeadLetter,
    GroupInfo,
    Message,
    Nack,
    Settlement,
)

__all__ = [
    "BACKENDS",
    "Ack",
    "Backend",
    "Bus",
    "BusSettings",
    "DeadLetter",
    "GroupInfo",
    "Message",
    "Nack",
    "Settlement",
    "backend_for",
    "bus_from_url",
]


@dataclass(frozen=True, slots=True)
class Backend:
    """Where a scheme's backend class lives, and the extra that brings its client library."""

    schemes: tuple[str, ...]
    module: str
    cls: str
    extra: str | None = None

    def load(self) -> Callable[..., Bus]:
        """The backend class; every one is called as ``Cls(url, *, bus_settings=...)``."""
        try:
            module = importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            raise UnknownBackendError(self._missing(e.name)) from e
        backend: Callable[..., Bus] = getattr(module, self.cls)
        return backend

    def _missing(self, name: str | None) -> str:
        if name == self.module:
            return f"the {self.schemes[0]} bus backend is not available yet in this Cumulo"
        hint = f"; install it with: pip install 'cumulo[{self.extra}]'" if self.extra else ""
        return f"the {self.schemes[0]} bus backend needs the '{name}' package{hint}"


BACKENDS: tuple[Backend, ...] = (
    Backend(("sqlite",), "cumulo.events.bus.sqlite", "SqliteBus"),
    Backend(("redis", "rediss"), "cumulo.events.bus.redis", "RedisBus", extra="redis"),
    Backend(("nats",), "cumulo.events.bus.nats", "NatsBus", extra="nats"),
    Backend(("kafka",), "cumulo.events.bus.kafka", "KafkaBus", extra="kafka"),
    Backend(("dapr",), "cumulo.events.bus.dapr", "DaprBus", extra="dapr"),
)


def backend_for(url: str) -> Backend:
    """The backend entry for a URL's scheme."""
    scheme = urlsplit(url).scheme
    for backend in BACKENDS:
        if scheme in backend.schemes:
            return backend
    known = ", ".join(scheme for backend in BACKENDS for scheme in backend.schemes)
    raise UnknownBackendError(f"no bus backend for {url!r}; known schemes: {known}")


def bus_from_url(url: str, settings: BusSettings | None = None) -> Bus:
    """A bus (not yet started) for ``url``; ``settings`` apply to every backend."""
    return backend_for(url).load()(url, bus_settings=settings or BusSettings())
