"""Where a SQLite bus file lives and how hard it syncs: :class:`SqliteSettings` and its URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from cumulo.errors import BusError, UnknownBackendError
from cumulo.events.bus.base import BusSettings

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "OFF")
URL_OPTIONS = ("synchronous", "busy_timeout")


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    """Where the bus file lives and how hard it syncs."""

    path: Path
    synchronous: str = "FULL"  # NORMAL may lose the last commits on power loss, not on kill -9
    busy_timeout: float = 10.0  # seconds to wait for another process's write lock
    bus: BusSettings = field(default_factory=BusSettings)

    def __post_init__(self) -> None:
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise BusError(f"sqlite synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        if self.busy_timeout < 0:
            raise BusError("sqlite busy_timeout must not be negative")

    @classmethod
    def from_url(cls, url: str, settings: BusSettings | None = None) -> SqliteSettings:
        """``sqlite:///relative.db`` or ``sqlite:////abs.db``; options from ``settings.extra``,
        then from the query (``?synchronous=NORMAL&busy_timeout=5``)."""
        settings = settings or BusSettings()
        parts = urlsplit(url)
        if parts.scheme != "sqlite":
            raise UnknownBackendError(f"not a sqlite URL: {url!r}")
        if parts.netloc or len(parts.path) < 2:
            raise BusError(
                f"bad sqlite URL {url!r}: use sqlite:///relative.db or sqlite:////abs.db"
            )
        options = {**settings.extra, **dict(parse_qsl(parts.query, keep_blank_values=True))}
        return cls(Path(unquote(parts.path[1:])), bus=settings, **parse_options(options, url))

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def parse_options(options: dict[str, str], url: str) -> dict[str, Any]:
    """The :class:`SqliteSettings` fields named by URL options; unknown or bad ones raise."""
    unknown = sorted(set(options) - set(URL_OPTIONS))
    if unknown:
        raise BusError(f"unknown sqlite option(s) {unknown} in {url!r}; known: {URL_OPTIONS}")
    parsed: dict[str, Any] = {}
    if "synchronous" in options:
        parsed["synchronous"] = options["synchronous"].upper()
    if "busy_timeout" in options:
        try:
            parsed["busy_timeout"] = float(options["busy_timeout"])
        except ValueError as e:
            raise BusError(f"sqlite busy_timeout must be a number of seconds: {url!r}") from e
    return parsed
