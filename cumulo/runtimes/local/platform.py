"""``cumulo up``: one process hosting the bus, gateway, dispatchers and sources.

Functions run in worker processes forked from one pre-warmed template per
function, so a crashing function never takes the platform down. Saved changes
to the project's code and YAML apply while it runs (:mod:`.reload`).

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
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import uvicorn

from cumulo.config import Settings
from cumulo.errors import ReloadError, RuntimeFailure, SpecError, WorkerStartError
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
from cumulo.runtimes.local.reload import Edits, ReloadPlan, plan_reload, project_edits
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
from cumulo.spec import Project, load_project
from cumulo.spec.decorated import forget_bytecode
from cumulo.spec.models import EventSource, Function, Trigger

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
        self,
        project: Project,
        settings: Settings,
        *,
        model_catalog: ModelCatalog | None = None,
        modules: Sequence[str] = (),
        reload: bool = True,
    ):
        self.project = project
        self.settings = settings
        self.modules = modules  # what the project was loaded with, for loading it again
        self.watch_files = reload
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
        self.triggers = project.all_triggers()  # live: replaced in place on reload
        self.public = set(public_functions(project.functions.values()))  # live, likewise
        self.reloaded: dict[str, Any] | None = None  # the last reload: /api/status shows it
        self._dispatching: dict[str, tuple[TriggerDispatcher, asyncio.Task[None]]] = {}
        self._sourcing: dict[str, asyncio.Task[None]] = {}  # the polling sources' loops
        self._client: WireClient | None = None
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
        self.dashboard_data = DashboardData(
            project, self.state, self.buses, self.describe, model_catalog
        )
        dashboard = Dashboard(self.dashboard_data)
        self.gateway = Gateway(
            GatewayParts(
                settings=settings,
                buses=self.buses,
                hosts=self.hosts,
                triggers=self.triggers,
                ingest=self.telemetry.ingest,
                status=self.describe,
                metrics=self.telemetry.metrics.exposition,
                webhooks=self.webhooks.get,
                public=self.public,
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
        self._client = client
        self.runs = RunStore(self.state / "runs.db")
        self._checkpoints = SqliteCheckpoints(self.state / "checkpoints.db")
        self._source_deliveries = SqliteDeliveries(self.state / "checkpoints.db")
        await asyncio.gather(*(self._start_function(f) for f in self.project.functions.values()))
        started = [self._start_dispatcher(t) for t in self.triggers.values()]
        # A group joins at the topic's end: nothing may publish before every trigger has
        # joined, or the events published meanwhile would pass it by.
        await asyncio.gather(*(d.joined.wait() for d in started if d is not None))
        for source in self.project.sources.values():
            self._start_source(source)
        self._background(self._housekeeping())
        if self.watch_files:
            self._background(self._watch())

    async def _start_buses(self) -> None:
        for name, resource in self.project.buses.items():
            bus = await self.dapr.open_bus(name, resource) or open_bus(
                resource, self.project.root, self.state, self.settings
            )
            bus = self.telemetry.observe(name, bus)  # counts what is published
            await bus.start()
            self.buses[name] = bus

    async def _start_function(self, function: Function) -> None:
        template, host = await self._launch(function)
        self.templates[function.name], self.hosts[function.name] = template, host

    async def _launch(self, function: Function) -> tuple[Template, FunctionHost]:
        """A function's template and host, started (and stopped again if that fails)."""
        assert self._client is not None and self.runs is not None
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
            destination = JobRunner(function, template, self.runs, announce)
        else:
            grace = self.settings.worker_grace_seconds
            destination = ServicePool(function, template, self._client, grace=grace)
        try:
            await template.start()
            await destination.start()
        except BaseException:
            await destination.stop()
            await template.stop()
            raise
        return template, destination

    async def _publish_one(self, bus: str, topic: str, event: Event) -> None:
        await self.buses[bus].publish(topic, [event])

    def _function_env(self, function: Function) -> dict[str, str]:
        """A function's whole environment: what its spec declares (see :mod:`.environment`)."""
        return function_environment(
            function, project=self.project.root, state=self.state, publish_token=self.publish_token
        )

    def _start_dispatcher(self, trigger: Trigger) -> TriggerDispatcher | None:
        """Deliver ``trigger`` (None when Dapr pushes it: see .dapr_push)."""
        if self.dapr.pushes(trigger):
            return None
        function = self.hosts[trigger.spec.function].function
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
        task = asyncio.create_task(dispatcher.run())
        task.add_done_callback(_report_crash)
        self._dispatching[trigger.name] = (dispatcher, task)
        self.dispatchers.append(dispatcher)
        self.deliveries.append(dispatcher)
        return dispatcher

    async def _stop_dispatcher(self, name: str) -> None:
        """Stop fetching for trigger ``name``; what it holds finishes (bounded) or is
        left to its lease. Its consumer group stays where it is on the bus."""
        if (running := self._dispatching.pop(name, None)) is None:
            return
        dispatcher, task = running
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dispatcher.drain(DRAIN_SECONDS)
        self.dispatchers.remove(dispatcher)
        self.deliveries.remove(dispatcher)

    def _start_source(self, source: EventSource) -> None:
        sink = source.spec.sink
        publish = functools.partial(self.buses[sink.bus].publish, sink.topic)
        running = build_source(source, publish, self._checkpoints, self._source_deliveries)
        if running is None:
            log.warning(
                "source %s: %s sources are not available yet", source.name, source.spec.kind
            )
            return
        self.sources.append(running)
        if isinstance(running, HttpSource):
            self.webhooks[source.name] = running
        else:
            task = asyncio.create_task(running.run())
            task.add_done_callback(_report_crash)
            self._sourcing[source.name] = task

    async def _stop_source(self, name: str) -> None:
        self.webhooks.pop(name, None)
        if (task := self._sourcing.pop(name, None)) is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.sources[:] = [s for s in self.sources if s.name != name]

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

    # --- reload: save and see (see .reload) ------------------------------------

    async def _watch(self) -> None:
        async for edits in project_edits(self.project.root, ignore=[self.state]):
            await self.reload(edits)

    async def reload(self, edits: Edits) -> ReloadPlan | None:
        """Apply saved changes; None (and the old project still serving) when they do not load."""
        started = time.monotonic()
        forget_bytecode(edits.code)
        try:
            new = await asyncio.to_thread(load_project, self.project.root, modules=self.modules)
        except SpecError as e:
            self._reloaded(None, [str(e)], started)
            return None
        sources = {name: t.sources for name, t in self.templates.items() if t.sources}
        plan = plan_reload(self.project, new, edits.code, sources)
        if plan.empty:
            return plan
        errors = await self._apply(plan, new)
        self._reloaded(plan, errors, started)
        return plan if not errors else None

    async def _apply(self, plan: ReloadPlan, new: Project) -> list[str]:
        """Make the platform run ``new``; the errors of what could not change.

        New and changed functions start first: when one fails to, nothing else
        changes. Code reloads are each their own: one that fails keeps its old code."""
        launched: dict[str, tuple[Template, FunctionHost]] = {}
        try:
            for name in (*plan.replace, *plan.add):
                launched[name] = await self._launch(new.functions[name])
        except (WorkerStartError, OSError, TimeoutError) as e:
            for template, host in launched.values():
                await host.stop()
                await template.stop()
            return [str(e)]
        reloads = [self.hosts[name].reload() for name in plan.reload]
        errors: list[str] = []
        for outcome in await asyncio.gather(*reloads, return_exceptions=True):
            if isinstance(outcome, ReloadError | WorkerStartError):
                errors.append(str(outcome))  # that function keeps its old code
            elif isinstance(outcome, BaseException):
                raise outcome
        await asyncio.gather(*(self._stop_dispatcher(name) for name in plan.stop_triggers))
        await asyncio.gather(*(self._stop_source(name) for name in plan.stop_sources))
        retired = [
            (self.templates.pop(n), self.hosts.pop(n)) for n in (*plan.replace, *plan.remove)
        ]
        for name, (template, host) in launched.items():
            self.templates[name], self.hosts[name] = template, host
        self._adopt(new)
        joining = [self._start_dispatcher(self.triggers[name]) for name in plan.start_triggers]
        await asyncio.gather(*(d.joined.wait() for d in joining if d is not None))
        for name in plan.start_sources:
            self._start_source(new.sources[name])
        for template, host in retired:
            await host.stop()
            await template.stop()
        return errors

    def _adopt(self, new: Project) -> None:
        """The new project is the one running: what the gateway and dashboard read follows."""
        self.project = new
        self.triggers.clear()
        self.triggers.update(new.all_triggers())
        self.public.clear()
        self.public.update(public_functions(new.functions.values()))
        self.dashboard_data.project = new

    def _reloaded(self, plan: ReloadPlan | None, errors: list[str], started: float) -> None:
        """Say what the reload did, in the log and in ``/api/status``."""
        seconds = time.monotonic() - started
        summary = plan.summary() if plan else "nothing changed"
        self.reloaded = {
            "at": time.time(),
            "ok": not errors,
            "summary": summary,
            "errors": errors,
            "notApplied": list(plan.not_applied) if plan else [],
            "seconds": round(seconds, 3),
        }
        for error in errors:
            log.error("reload: %s (the old code keeps serving)", error)
        if plan is not None:
            log.info("reload: %s (%.2fs)", summary, seconds)
            for line in plan.not_applied:
                log.warning("reload: %s", line)

    async def _stop(self) -> None:
        tasks = [
            *self._tasks,
            *self._sourcing.values(),
            *(t for _, t in self._dispatching.values()),
        ]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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
            "reload": self.reloaded,
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
