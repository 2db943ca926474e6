"""The JSON the dashboard reads (``/api/...``), gathered from a running platform.

Every answer is built on request from the platform's live objects and its
stores; the HTML pages (:mod:`.app`) render the same data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cumulo.events.bus.base import Bus, Message
from cumulo.runtimes.local.state_files import recorded_run_log
from cumulo.runtimes.local.views import Status
from cumulo.spec import Project

from . import data, graph
from .deadletters import RedriveLog, dead_letter_json


class DashboardData:
    """What the dashboard reads: the project, the platform's state folder and live buses,
    its status, and the ML application's model catalog (when it has one)."""

    def __init__(
        self,
        project: Project,
        state: Path,
        buses: Mapping[str, Bus],
        status: Status,
        model_catalog: data.ModelCatalog | None = None,
    ):
        self.project = project
        self.state = state
        self.buses = buses
        self.status = status
        self.stores = data.Stores(state, model_catalog)
        self._redrives: RedriveLog | None = None

    @property
    def redrives(self) -> RedriveLog:
        if self._redrives is None:
            self._redrives = RedriveLog(self.state / "dashboard.db")
        return self._redrives

    def bus(self, name: str | None) -> Bus | None:
        return self.buses.get(name or "default")

    def dead_letter_topics(self) -> list[str]:
        triggers = self.project.all_triggers().values()
        return sorted({t.spec.delivery.dead_letter_topic for t in triggers} or {"dead-letter"})

    async def event_messages(self, since: float | None = None) -> list[Message]:
        """What the functions exchanged: every topic of every bus but the dead-letter ones."""
        skip = set(self.dead_letter_topics())
        found: list[Message] = []
        for bus in self.buses.values():
            for topic in await bus.topics():
                if topic not in skip:
                    found += await data.scan(bus, topic, since)
        return found

    async def functions(self) -> list[dict[str, Any]]:
        status = await self.status()
        counts = await asyncio.to_thread(self.stores.runs.counts)
        return [_function_row(f, self.project, counts) for f in status["functions"]]

    async def graph(self) -> graph.Graph:
        status = await self.status()
        return graph.build(self.project, status, await self.event_messages())

    async def search(self, bus: Bus, topic: str, query: data.EventQuery) -> list[dict[str, Any]]:
        messages = await data.scan(bus, topic, query.since)
        runs = await self.stores.list_runs(limit=2000)
        return data.search(messages, query, runs)

    async def runs(self, function: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        runs = await self.stores.list_runs(function, limit)
        if not runs:  # no progress to look for: scanning the whole bus would find none
            return []
        progress = data.progress_by_run(await self.event_messages(min(r.started for r in runs)))
        return [data.run_json(r, progress.get(r.id)) for r in runs]

    async def run(self, run_id: str) -> dict[str, Any] | None:
        run = await self.stores.get_run(run_id)
        if run is None:
            return None
        progress = data.progress_by_run(await self.event_messages(run.started))
        return data.run_json(run, progress.get(run.id))

    async def run_log(self, run_id: str) -> str | None:
        """The end of a run's log; ``""`` when its recorded log is not inside ``STATE/runs``."""
        run = await self.stores.get_run(run_id)
        if run is None:
            return None
        log = recorded_run_log(self.state, run.log)
        return "" if log is None else await asyncio.to_thread(data.log_tail, str(log))

    async def dead_letters(self, bus_name: str, topic: str) -> list[dict[str, Any]]:
        bus = self.buses[bus_name]
        messages = await data.scan(bus, topic)
        done = await asyncio.to_thread(self.redrives.done, bus_name, topic)
        return [dead_letter_json(m, done.get(m.offset)) for m in reversed(messages)]

    async def redrive(self, bus_name: str, topic: str, offset: int) -> dict[str, Any] | None:
        """Redrive one dead letter (idempotent); ``None`` when there is no such offset."""
        bus = self.buses[bus_name]
        found = await bus.read(topic, after=offset - 1, limit=1)
        if not found or found[0].offset != offset:
            return None
        message = found[0]
        trigger = self.project.all_triggers().get(
            str(message.event.attributes.get("cumulotrigger", ""))
        )
        target = trigger.spec.topic if trigger else "default"
        done = await self.redrives.redrive(bus_name, bus, topic, message, target)
        return done.json()


def _function_row(
    info: dict[str, Any], project: Project, counts: dict[tuple[str, str], int]
) -> dict[str, Any]:
    spec = project.functions[info["name"]].spec
    if info["mode"] == "job":
        mine = {status: n for (fn, status), n in counts.items() if fn == info["name"]}
        live = len(info.get("running", []))
        invocations = sum(mine.values()) + live
        errors = sum(n for status, n in mine.items() if status in ("failed", "timed-out"))
        cold: int | str = "every run"
    else:
        live = len(info.get("replicas", []))
        invocations, errors, cold = info["invocations"], info["errors"], info["cold_starts"]
    return {
        "name": info["name"],
        "mode": info["mode"],
        "replicas": live,
        "max": spec.scale.max,
        "invocations": invocations,
        "errors": errors,
        "coldStarts": cold,
    }
