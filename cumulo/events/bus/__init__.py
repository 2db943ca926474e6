"""The event bus: one contract (:mod:`.base`), one backend module per broker.

:func:`bus_from_url` picks the backend by URL scheme from an explicit table and
imports it only then, so an optional broker client is needed only by those who
use it; when it is missing, :class:`~cumulo.errors.MissingExtraError` names the
extra to install.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
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
from cumulo.extras import from_extra

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
        """The backend class; every one is called as ``Cls(url, *, bus_settings=...)``.

        Raises :class:`~cumulo.errors.MissingExtraError` when the backend's client
        library is not installed, :class:`UnknownBackendError` when the backend
        module does not exist.
        """
        try:
            with self.client_imports():
                module = importlib.import_module(self.module)
        except ModuleNotFoundError as e:
            if e.name != self.module:
                raise
            raise UnknownBackendError(
                f"the {self.schemes[0]} bus backend is not available yet in this Cumulo"
            ) from e
        backend: Callable[..., Bus] = getattr(module, self.cls)
        return backend

    def client_imports(self) -> AbstractContextManager[None]:
        """Where the backend's client library is imported: a missing one names the extra."""
        if self.extra is None:
            return contextlib.nullcontext()
        return from_extra(self.extra, needed_by=f"{self.schemes[0]}://")


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
