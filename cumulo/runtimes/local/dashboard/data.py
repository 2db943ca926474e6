"""What the dashboard reads: events of the buses, runs and their progress, models.

Everything here is read on request from the platform's own stores (the bus,
``runs.db``, ``models.db``); nothing is cached, so a page is as fresh as its
last load. Scans are capped: the dashboard looks at recent history, not all of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cumulo.events import tracing
from cumulo.events.bus.base import Bus, Message
from cumulo.events.lineage import RUN_PROGRESS
from cumulo.runtimes.local.api_models import SearchQuery
from cumulo.runtimes.local.runs import Run, RunStore
from cumulo.runtimes.local.wiring import message_json

# The models the dashboard lists, read from the registry file in the state folder:
# the ML application's (cumulo.functions.model_registry.model_catalog), handed down by `up`.
ModelCatalog = Callable[[Path], list[dict[str, Any]]]

PAGE = 1000
SCAN_CAP = 20_000  # the most recent events a scan keeps, per topic
LOG_TAIL_BYTES = 64 * 1024
FUNCTION_SOURCE = "/cumulo/functions/"


async def scan(bus: Bus, topic: str, since: float | None = None) -> list[Message]:
    """A topic's messages in offset order (the last ``SCAN_CAP`` of them)."""
    found: list[Message] = []
    after = 0
    while True:
        page = await bus.read(topic, after=after, limit=PAGE, since=since)
        found.extend(page)
        if len(found) > SCAN_CAP:
            del found[:-SCAN_CAP]
        if len(page) < PAGE:
            return found
        after = page[-1].offset


def lineage_of(message: Message) -> dict[str, Any]:
    data = message.event.data
    lineage = data.get("lineage") if isinstance(data, dict) else None
    return lineage if isinstance(lineage, dict) else {}


def emitted_by(message: Message) -> str | None:
    """The function whose output an event is (its source says so), if any."""
    source = str(message.event.source)
    return source[len(FUNCTION_SOURCE) :] if source.startswith(FUNCTION_SOURCE) else None


@dataclass(frozen=True)
class EventQuery:
    type: str = ""
    source: str = ""
    subject: str = ""
    since: float | None = None
    until: float | None = None
    limit: int = 100

    @classmethod
    def of(cls, search: SearchQuery) -> EventQuery:
        """The filters of a checked ``/api/events/search`` or ``/ui/events`` query."""
        return cls(
            type=search.type.strip(),
            source=search.source.strip(),
            subject=search.subject.strip(),
            since=search.since,
            until=search.until,
            limit=search.limit,
        )

    def matches(self, message: Message) -> bool:
        event = message.event
        if self.until is not None and message.published_at > self.until:
            return False
        pairs = (
            (self.type, event.type),
            (self.source, event.source),
            (self.subject, event.subject),
        )
        return all(want.lower() in str(have).lower() for want, have in pairs if want)


def search(messages: list[Message], query: EventQuery, runs: list[Run]) -> list[dict[str, Any]]:
    """Matching events, newest first, each with the runs it started and the events it caused."""
    matched = [m for m in messages if query.matches(m)][-query.limit :]
    return [with_links(m, messages, runs) for m in reversed(matched)]


def with_links(message: Message, messages: list[Message], runs: list[Run]) -> dict[str, Any]:
    event = message.event
    trace = tracing.trace_id_of(event)
    caused = [
        m.event.id
        for m in messages
        if m.offset > message.offset
        and m.event.id != event.id
        and (
            lineage_of(m).get("triggerEvent") == event.id
            or (trace is not None and tracing.trace_id_of(m.event) == trace)
        )
    ]
    started = [run_json(r) for r in runs if r.event_id == event.id]
    return {**message_json(message), "runs": started, "caused": caused[:50]}


def progress_by_run(messages: list[Message]) -> dict[str, dict[str, Any]]:
    """The latest ``dev.cumulo.run.progress`` data of each run id."""
    latest: dict[str, dict[str, Any]] = {}
    for message in messages:
        data = message.event.data
        if message.event.type == RUN_PROGRESS and isinstance(data, dict) and data.get("run"):
            latest[str(data["run"])] = data
    return latest


def run_json(run: Run, progress: dict[str, Any] | None = None) -> dict[str, Any]:
    percent = (progress or {}).get("percent")
    if run.status == "succeeded":
        percent = 100.0
    return {
        "id": run.id,
        "function": run.function,
        "eventId": run.event_id,
        "eventType": run.event_type,
        "status": run.status,
        "started": run.started,
        "finished": run.finished,
        "duration": run.duration,
        "exitCode": run.exit_code,
        "error": run.error,
        "trace": run.trace,
        "progress": percent,
        "stage": (progress or {}).get("stage"),
    }


def log_tail(path: str, limit: int = LOG_TAIL_BYTES) -> str:
    """The end of a run's log (at most ``limit`` bytes)."""
    try:
        with open(path, "rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - limit))
            return log.read().decode(errors="replace")
    except OSError:
        return ""


class Stores:
    """The platform's SQLite stores, read off the event loop."""

    def __init__(self, state: Path, model_catalog: ModelCatalog | None = None):
        self.state = state
        self.model_catalog = model_catalog
        self._runs: RunStore | None = None

    @property
    def runs(self) -> RunStore:
        if self._runs is None:
            self._runs = RunStore(self.state / "runs.db")
        return self._runs

    async def list_runs(self, function: str | None = None, limit: int = 200) -> list[Run]:
        return await asyncio.to_thread(self.runs.list, function, limit)

    async def get_run(self, run_id: str) -> Run | None:
        try:
            return await asyncio.to_thread(self.runs.get, run_id)
        except TypeError:  # no such row
            return None

    async def models(self) -> list[dict[str, Any]]:
        if self.model_catalog is None:
            return []
        return await asyncio.to_thread(self.model_catalog, self.state / "models.db")
