"""``cumulo up``: one process hosting the bus, gateway, dispatchers and sources.

Functions run in worker processes forked from one pre-warmed template per
function, so a crashing function never takes the platform down.

:class:`Platform` is the composition root: it owns the live collections (buses,
function hosts, the triggers being delivered) and hands each part only what it
reads of them (:mod:`.views`): the gateway its :class:`GatewayParts`, the
metrics the collections they count, the dashboard its data, the embedded Dapr
buses the hosts and buses they deliver to. No part holds the platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import secrets
import signal
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import asdict
from typing import Any

import uvicorn

from cumulo.config import Settings
from cumulo.errors import RuntimeFailure, SpecError
from cumulo.events.bus.base import Bus
from cumulo.events.dispatcher import TriggerDispatcher
from cumulo.events.event import Event
from cumulo.events.sources.webhook import HttpSource
from cumulo.runtimes.local.auth import public_functions
from cumulo.runtimes.local.checkpoints import SqliteCheckpoints
from cumulo.runtimes.local.dapr_push import DaprPush
from cumulo.runtimes.local.dashboard import Dashboard, DashboardData
from cumulo.runtimes.local.dashboard.data import ModelCatalog
from cumulo.runtimes.local.environment import function_environment
from cumulo.runtimes.local.gateway import Gateway, GatewayParts
from cumulo.runtimes.local.hosts import FunctionHost
from cumulo.runtimes.local.jobs import JobRunner
from cumulo.runtimes.local.limits import bounded_httptools
from cumulo.runtimes.local.metrics import PlatformMetrics, StatsCollector
from cumulo.runtimes.local.pool import ServicePool
from cumulo.runtimes.local.runs import RunStore
from cumulo.runtimes.local.sources import (
    Running,
    SqliteDeliveries,
    build_source,
    describe_source,
)
from cumulo.runtimes.local.telemetry import Telemetry
from cumulo.runtimes.local.template import Template, TemplateConfig
from cumulo.runtimes.local.views import TriggerView
from cumulo.runtimes.local.wire import WireClient
from cumulo.runtimes.local.wiring import missing_extras, open_bus
from cumulo.spec import Project
from cumulo.spec.models import Function

log = logging.getLogger("cumulo.platform")

IDLE_CHECK_SECONDS = 1.0
RETENTION_CHECK_SECONDS = 3600.0
DRAIN_SECONDS = 5.0


class GatewayServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM or SIGINT ends ``serve()`` and goes no further.

    uvicorn raises the signal again once it has stopped serving, which would end
    the process before :meth:`Platform.run` stops the dispatchers, pools,
    templates and buses in order.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


class Platform:
    def __init__(
        self, project: Project, settings: Settings, *, model_catalog: ModelCatalog | None = None
    ):
        self.project = project
        self.settings = settings
        self.state = settings.state_path(project.root)
        # the live collections, filled as the platform starts
        self.buses: dict[str, Bus] = {}
        self.templates: dict[str, Template] = {}
        self.hosts: dict[str, FunctionHost] = {}  # by function name
        self.dispatchers: list[TriggerDispatcher] = []  # the pulled triggers
        self.deliveries: list[TriggerView] = []  # every trigger being delivered, pulled or pushed
        self.sources: list[Running] = []
        self.webhooks: dict[str, HttpSource] = {}
        self.runs: RunStore | None = None
        # with auth on, what functions publish with (POST /events only): see .auth
        self.publish_token = secrets.token_urlsafe(32) if settings.api_token else None
        stats = StatsCollector(self.buses, self.hosts, self.deliveries, self._run_counts)
        self.telemetry = Telemetry(  # metrics registry, span export
            PlatformMetrics(stats), otlp_endpoint=settings.otlp_endpoint, project=str(project.root)
        )
        self.dapr = DaprPush(  # embedded dapr:// buses: sidecars, push delivery
            project, settings, self.state,
            buses=self.buses, hosts=self.hosts, middleware=self.telemetry.middleware,
        )  # fmt: skip
        dashboard = Dashboard(
            DashboardData(project, self.state, self.buses, self.describe, model_catalog)
        )
        self.gateway = Gateway(
            GatewayParts(
                settings=settings,
                buses=self.buses,
                hosts=self.hosts,
                triggers=project.all_triggers(),
                ingest=self.telemetry.ingest,
                status=self.describe,
                metrics=self.telemetry.metrics.exposition,
                webhooks=self.webhooks.get,
                public=public_functions(project.functions.values()),
                publish_token=self.publish_token,
                routes=[*dashboard.routes(), *self.dapr.routes()],  # /ui/, its /api/, /dapr/*
            )
        )
        self.url = ""
        self._tasks: list[asyncio.Task[Any]] = []

    # --- lifecycle -----------------------------------------------------------

    async def run(self, on_ready: Any = None) -> None:
        """Start everything, serve until SIGINT/SIGTERM, then stop cleanly.

        A project that needs an extra this installation lacks stops here, before
        anything starts: a :class:`SpecError` naming each one.
        """
        if missing := missing_extras(self.project):
            raise SpecError(missing)
        self.state.mkdir(parents=True, exist_ok=True)
        with self._exclusive(), contextlib.ExitStack() as cleanup:
            client = WireClient()  # keep-alive connections to the workers (see .wire)
            cleanup.callback(client.close)
            try:
                await self._start(client)
                cleanup.callback((self.state / "gateway.json").unlink, missing_ok=True)
                await self._serve(on_ready)
            finally:
                await self._stop()

    @contextlib.contextmanager
    def _exclusive(self) -> Any:
        with open(self.state / "platform.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise RuntimeFailure(f"another `cumulo up` is running on {self.state}") from e
            yield

    async def _start(self, client: WireClient) -> None:
        (self.state / "logs").mkdir(exist_ok=True)
        await self._start_buses()
        runs = self.runs = RunStore(self.state / "runs.db")
        await asyncio.gather(
            *(self._start_function(f, client, runs) for f in self.project.functions.values())
        )
        self._start_dispatchers()
        # A group joins at the topic's end: nothing may publish before every trigger has
        # joined, or the events published meanwhile would pass it by.
        await asyncio.gather(*(d.joined.wait() for d in self.dispatchers))
        self._start_sources()
        self._background(self._housekeeping())

    async def _start_buses(self) -> None:
        for name, resource in self.project.buses.items():
            bus = await self.dapr.open_bus(name, resource) or open_bus(
                resource, self.project.root, self.state, self.settings
            )
            bus = self.telemetry.observe(name, bus)  # counts what is published
            await bus.start()
            self.buses[name] = bus

    async def _start_function(self, function: Function, client: WireClient, runs: RunStore) -> None:
        config = TemplateConfig(
            name=function.name,
            target=function.spec.handler,
            source=self.project.root,
            log=self.state / "logs" / f"{function.name}.log",
            signature=function.spec.signature,
            concurrency=function.spec.scale.concurrency,
            max_body_bytes=self.settings.max_body_bytes,
            env=tuple(self._function_env(function).items()),
        )
        template = Template(config, on_exit=lambda pid, code: destination.on_exit(pid, code))
        destination: FunctionHost
        if function.spec.mode == "job":
            announce = functools.partial(self._publish_one, "default", "default")
            destination = JobRunner(function, template, runs, announce)
        else:
            grace = self.settings.worker_grace_seconds
            destination = ServicePool(function, template, client, grace=grace)
        self.templates[function.name] = template
        self.hosts[function.name] = destination
        await template.start()
        await destination.start()

    async def _publish_one(self, bus: str, topic: str, event: Event) -> None:
        await self.buses[bus].publish(topic, [event])

    def _function_env(self, function: Function) -> dict[str, str]:
        """A function's whole environment: what its spec declares (see :mod:`.environment`)."""
        return function_environment(
            function, project=self.project.root, state=self.state, publish_token=self.publish_token
        )

    def _start_dispatchers(self) -> None:
        triggers = self.project.all_triggers()
        for trigger in triggers.values():
            if self.dapr.pushes(trigger):
                continue  # Dapr delivers it: see cumulo.runtimes.local.dapr_push
            function = self.project.functions[trigger.spec.function]
            scale = function.spec.scale
            per_replica = 1 if function.spec.mode == "job" else scale.concurrency
            dispatcher = TriggerDispatcher(
                self.buses[trigger.spec.bus],
                trigger,
                self.hosts[function.name],
                function_timeout=function.spec.timeout,
                concurrency=scale.max * per_replica,
                middleware=self.telemetry.middleware,
            )
            self.dispatchers.append(dispatcher)
            self.deliveries.append(dispatcher)
            self._background(dispatcher.run())

    def _start_sources(self) -> None:
        checkpoints = SqliteCheckpoints(self.state / "checkpoints.db")
        deliveries = SqliteDeliveries(self.state / "checkpoints.db")
        for source in self.project.sources.values():
            sink = source.spec.sink
            publish = functools.partial(self.buses[sink.bus].publish, sink.topic)
            running = build_source(source, publish, checkpoints, deliveries)
            if running is None:
                log.warning(
                    "source %s: %s sources are not available yet", source.name, source.spec.kind
                )
                continue
            self.sources.append(running)
            if isinstance(running, HttpSource):
                self.webhooks[source.name] = running
            else:
                self._background(running.run())

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` until the platform stops; a crash is logged, never silent."""
        task = asyncio.create_task(work)
        task.add_done_callback(_report_crash)
        self._tasks.append(task)

    async def _serve(self, on_ready: Any) -> None:
        config = uvicorn.Config(
            self.gateway.app,
            host=self.settings.host,
            port=self.settings.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            http=bounded_httptools(self.settings.max_header_bytes),  # 431 past the limit
        )
        server = GatewayServer(config)
        serving = asyncio.create_task(server.serve())
        while not server.started and not serving.done():
            await asyncio.sleep(0.01)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            self.url = f"http://{self.settings.host}:{port}"
            await self.dapr.start_subscribers(port)
            self.deliveries.extend(self.dapr.triggers.values())
            self._write_gateway_file(port)
            if on_ready:
                on_ready(self)
        await serving

    def _write_gateway_file(self, port: int) -> None:
        info = {
            "pid": os.getpid(),
            "url": self.url,
            "port": port,
            "project": str(self.project.root),
        }
        tmp = self.state / "gateway.json.tmp"
        tmp.write_text(json.dumps(info))
        tmp.replace(self.state / "gateway.json")

    async def _housekeeping(self) -> None:
        since_trim = RETENTION_CHECK_SECONDS
        while True:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            for host in self.hosts.values():
                await host.scale_down_idle()
            since_trim += IDLE_CHECK_SECONDS
            if since_trim >= RETENTION_CHECK_SECONDS:
                since_trim = 0
                for bus in self.buses.values():
                    await bus.trim()

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dapr.stop()
        await asyncio.gather(*(d.drain(DRAIN_SECONDS) for d in self.dispatchers))
        await asyncio.gather(
            *(host.stop() for host in self.hosts.values())
        )  # SIGKILL after the grace
        await asyncio.gather(*(t.stop() for t in self.templates.values()))
        for bus in self.buses.values():
            await bus.close()
        await self.telemetry.close()

    # --- what the CLI sees ---------------------------------------------------

    async def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "url": self.url,
            "project": str(self.project.root),
            "functions": [self._describe_function(h) for h in self.hosts.values()],
            "triggers": [
                {
                    "name": d.trigger.name,
                    "function": d.trigger.spec.function,
                    "inflight": d.inflight,
                    **asdict(d.stats),
                }
                for d in self.deliveries
            ],
            "sources": [describe_source(s) for s in self.sources],
            "groups": [asdict(g) for bus in self.buses.values() for g in await bus.groups()],
        }

    def _run_counts(self) -> dict[tuple[str, str], int]:
        return self.runs.counts() if self.runs is not None else {}

    def _describe_function(self, host: FunctionHost) -> dict[str, Any]:
        function = host.function
        return {
            "name": function.name,
            "mode": function.spec.mode,
            "signature": self.templates[function.name].signature,
            "template": self.templates[function.name].pid,
            **host.describe(),
        }


def _report_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s stopped: %r", task.get_coro(), error, exc_info=error)
