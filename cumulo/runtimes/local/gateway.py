"""The HTTP gateway of ``cumulo up``.

- ``POST /events``: CloudEvents in binary, structured or batch mode; 202 once
  durably on the bus; 400/413/415 with a problem+json body that says what is
  wrong; 503 with ``Retry-After`` when the bus cannot take them.
- ``POST /sources/<name>``: a git or webhook source's deliveries
  (:mod:`cumulo.runtimes.local.sources`).
- ``/fn/<name>/...``: a function's own HTTP endpoint. A service function's
  request is held while a worker cold-starts; a job function takes a
  CloudEvent and answers when the run ends.
- ``/api/...``: what the CLI reads about the running platform; the whole API is
  described at ``/api/openapi.json`` (:mod:`cumulo.runtimes.local.openapi`).
- ``GET /metrics``: Prometheus metrics (:mod:`cumulo.runtimes.local.metrics`).
- ``/ui/``: the web dashboard (:mod:`cumulo.runtimes.local.dashboard`).

With ``CUMULO_API_TOKEN`` set, ``/api/*``, ``/metrics``, ``/events`` and
``/fn/*`` need a bearer token (:mod:`cumulo.runtimes.local.auth`), except a
function whose spec says ``access: public``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import aiohttp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.errors import (
    BusUnavailableError,
    InvalidEventError,
    WorkerStartError,
)
from cumulo.events.bus.base import Bus
from cumulo.events.bus.names import trigger_group
from cumulo.events.cloudevent import events_from_http
from cumulo.events.event import Event
from cumulo.runtimes.local import api_input, openapi
from cumulo.runtimes.local.api_input import problem
from cumulo.runtimes.local.api_models import EventsQuery, Replay
from cumulo.runtimes.local.auth import BearerAuth, public_functions
from cumulo.runtimes.local.dashboard import Dashboard
from cumulo.runtimes.local.hosts import FunctionHost
from cumulo.runtimes.local.http import EventReader, answer, read_body
from cumulo.runtimes.local.limits import HeaderLimits
from cumulo.runtimes.local.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cumulo.runtimes.local.pool import ServicePool
from cumulo.runtimes.local.sources import source_routes
from cumulo.runtimes.local.wiring import message_json
from cumulo.runtimes.worker import contract

if TYPE_CHECKING:
    from cumulo.runtimes.local.platform import Platform

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "host",
        "content-length",
        "proxy-authorization",
        "proxy-authenticate",
    }
)


class Gateway:
    def __init__(self, platform: Platform):
        self.platform = platform
        self.started = time.time()
        self.reader = EventReader(platform.settings)  # POST /events: the edge's limits
        self.app = Starlette(
            routes=[
                Route("/events", self.ingest, methods=["POST"]),
                Route("/healthz", self.health),
                Route("/api/status", self.status),
                Route("/api/events", self.events),
                Route("/api/replay", self.replay, methods=["POST"]),
                Route("/api/openapi.json", self.openapi),
                Route("/metrics", self.metrics),
                Route("/fn/{name}", self.function, methods=METHODS),
                Route("/fn/{name}/{path:path}", self.function, methods=METHODS),
                *source_routes(lambda name: self.platform.webhooks.get(name)),
                *Dashboard(platform).routes(),  # /ui/ and the /api/ it reads
                *platform.dapr.routes(),  # /dapr/*: an embedded Dapr bus's deliveries
            ],
            exception_handlers=api_input.EXCEPTION_HANDLERS,  # problem+json, never a 500
            middleware=[  # in order: the first is outermost
                Middleware(
                    HeaderLimits,
                    max_headers=platform.settings.max_headers,
                    max_header_bytes=platform.settings.max_header_bytes,
                ),
                Middleware(
                    BearerAuth,
                    token=platform.settings.api_token,
                    public=public_functions(platform.project.functions.values()),
                    publish_token=platform.publish_token,
                ),
            ],
        )

    async def ingest(self, request: Request) -> Response:
        bus_name = request.query_params.get("bus", "default")
        topic = request.query_params.get("topic", "default")
        if bus_name not in self.platform.buses:
            return problem(404, "unknown-bus", "Unknown bus", f"no event bus named '{bus_name}'")
        try:
            events = await self.reader.read(request)
            bus = self.platform.buses[bus_name]
            offsets = await self.platform.telemetry.ingest(bus, bus_name, topic, events)
        except InvalidEventError as e:
            return answer(contract.invalid_request_response(e))
        except BusUnavailableError as e:
            return problem(
                503, "bus-unavailable", "Bus unavailable", str(e), headers={"retry_after": "1"}
            )
        return JSONResponse(
            {"accepted": len(events), "ids": [e.id for e in events], "offsets": offsets},
            status_code=202,
        )

    async def function(self, request: Request) -> Response:
        name = request.path_params["name"]
        target = self.platform.destinations.get(name)
        if target is None:
            return problem(
                404, "unknown-function", "Unknown function", f"no function named '{name}'"
            )
        try:
            body = await read_body(request, self.platform.settings.max_body_bytes)
            if isinstance(target, ServicePool):  # proxied as HTTP; a job runs one event
                return await self.proxy(target, request, body)
            return await self.run_job(target, request, body)
        except InvalidEventError as e:
            return answer(contract.invalid_request_response(e))
        except WorkerStartError as e:
            return problem(503, "worker-start-failed", "Function unavailable", str(e))

    async def run_job(self, runner: FunctionHost, request: Request, body: bytes) -> Response:
        events: list[Event] = events_from_http(request.headers, body)
        if len(events) != 1:
            return problem(
                400,
                "one-event-per-run",
                "One event per run",
                "a job function runs one event at a time",
            )
        outcome = await runner.deliver(events[0], timeout=runner.function.spec.timeout)
        return answer(contract.outcome_response(outcome))

    async def proxy(self, pool: ServicePool, request: Request, body: bytes) -> Response:
        path = "/" + request.path_params.get("path", "")
        url_query = f"?{request.url.query}" if request.url.query else ""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        timeout = pool.function.spec.timeout
        try:
            answer = await pool.request(
                request.method, path + url_query, headers, body, timeout=timeout
            )
        except TimeoutError:
            return problem(
                504, "function-timeout", "Function timed out", f"no answer within {timeout:g}s"
            )
        except aiohttp.ClientError as e:
            return problem(
                502, "worker-failed", "Worker failed", f"the worker dropped the request: {e}"
            )
        out_headers = [(k, v) for k, v in answer.headers if k.lower() not in HOP_BY_HOP]
        response = Response(answer.body, status_code=answer.status)
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers
        ] + [(b"content-length", str(len(answer.body)).encode())]
        return response

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        body = await self.platform.telemetry.metrics.exposition()
        return Response(body, headers={"content-type": METRICS_CONTENT_TYPE})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.document())

    async def status(self, request: Request) -> Response:
        return JSONResponse(await self.platform.describe())

    async def events(self, request: Request) -> Response:
        """``?topic=&after=&limit=&bus=`` (:class:`EventsQuery`): events in offset order."""
        ask = api_input.query(EventsQuery, request)
        bus = self.platform.buses.get(ask.bus)
        if bus is None:
            return problem(404, "unknown-bus", "Unknown bus", f"no event bus named '{ask.bus}'")
        messages = await bus.read(ask.topic, after=ask.after, limit=ask.limit)
        return JSONResponse([message_json(m) for m in messages])

    async def replay(self, request: Request) -> Response:
        """Body :class:`Replay`; 404 names an unknown trigger, bus or topic."""
        limit = self.platform.settings.api_max_body_bytes
        ask = await api_input.body(Replay, request, limit)
        target = await replay_target(self.platform, ask)
        if isinstance(target, Response):
            return target
        bus, group, topic = target
        count = await bus.replay(
            group=group, topic=topic, from_offset=ask.from_offset, from_time=ask.start_time
        )
        return JSONResponse({"replayed": count})


ReplayTarget = tuple[Bus, str | None, str | None]  # the bus, and a group or a topic


async def replay_target(platform: Platform, ask: Replay) -> ReplayTarget | Response:
    """The bus and the group (a trigger's) or topic a replay rewinds, or the 404 saying why not."""
    trigger = platform.project.all_triggers().get(ask.trigger) if ask.trigger else None
    name = ask.bus or (trigger.spec.bus if trigger else "default")
    bus = platform.buses.get(name)
    if bus is None:
        return problem(404, "unknown-bus", "Unknown bus", f"no event bus named '{name}'")
    if ask.trigger is not None:
        if trigger is None or trigger.spec.bus != name:
            detail = f"no trigger named '{ask.trigger}' on bus '{name}'"
            return problem(404, "unknown-trigger", "Unknown trigger", detail)
        return bus, trigger_group(ask.trigger), None
    if ask.topic not in await bus.topics():
        detail = f"no topic named '{ask.topic}' on bus '{name}'"
        return problem(404, "unknown-topic", "Unknown topic", detail)
    return bus, None, ask.topic
