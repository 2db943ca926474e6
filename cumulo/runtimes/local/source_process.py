"""``cumulo source run NAME``: one event source as its own process.

The entrypoint a cluster Deployment runs for a source. A git webhook,
webhook or S3 ``notification`` source serves ``POST /sources/<name>`` (and
``GET /healthz``) on its own port; a cron, git or S3 ``poll`` source runs its loop. Either publishes to the
bus its sink names, as ``cumulo up`` would; checkpoints and seen delivery ids
live in the project's state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.config import Settings
from cumulo.errors import SourceError
from cumulo.events.bus.base import Bus
from cumulo.events.sources.webhook import HttpSource
from cumulo.runtimes.local.checkpoints import SqliteCheckpoints
from cumulo.runtimes.local.sources import (
    Running,
    SqliteDeliveries,
    build_source,
    describe_source,
    source_routes,
)
from cumulo.runtimes.local.wiring import open_bus
from cumulo.spec import Project

log = logging.getLogger("cumulo.sources")


@contextlib.asynccontextmanager
async def _sink_bus(project: Project, name: str, settings: Settings) -> AsyncIterator[Bus]:
    state = settings.state_path(project.root)
    bus = open_bus(project.buses[name], project.root, state, settings)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.close()


def _build(project: Project, name: str, bus: Bus, state: Path) -> Running:
    source = project.sources.get(name)
    if source is None:
        known = ", ".join(sorted(project.sources)) or "none"
        raise SourceError(f"the project has no event source '{name}' (it has: {known})")
    state.mkdir(parents=True, exist_ok=True)
    publish = functools.partial(bus.publish, source.spec.sink.topic)
    checkpoints = SqliteCheckpoints(state / "checkpoints.db")
    deliveries = SqliteDeliveries(state / "checkpoints.db")
    running = build_source(source, publish, checkpoints, deliveries)
    if running is None:
        raise SourceError(f"{source.spec.kind} sources cannot run yet")
    return running


def source_app(running: HttpSource) -> Starlette:
    """The HTTP app of one webhook-style source."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", **describe_source(running)})

    routes = source_routes(lambda name: running if name == running.name else None)
    return Starlette(routes=[Route("/healthz", health), *routes])


async def run_source(project: Project, name: str, settings: Settings) -> None:
    """Run source ``name`` until cancelled (SIGINT/SIGTERM when served)."""
    source = project.sources.get(name)
    bus_name = source.spec.sink.bus if source else "default"
    async with _sink_bus(project, bus_name, settings) as bus:
        running = _build(project, name, bus, settings.state_path(project.root))
        if not isinstance(running, HttpSource):
            log.info("source %s: running", name)
            await running.run()
            return
        config = uvicorn.Config(
            source_app(running),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        log.info(
            "source %s: POST http://%s:%d/sources/%s", name, settings.host, settings.port, name
        )
        await uvicorn.Server(config).serve()


def main(project: Project, name: str, settings: Settings) -> None:
    """Run until SIGINT/SIGTERM (a poller stops on Ctrl-C too)."""
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner() as runner:
        runner.run(run_source(project, name, settings))
