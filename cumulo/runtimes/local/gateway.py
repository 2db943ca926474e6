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

With ``CUMULO_API_TOKEN`` set, ``/api/*``, ``/metrics`` and ``/events`` need a
bearer token (:mod:`cumulo.runtimes.local.auth`); ``/fn/*`` stays public.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import aiohttp
import orjson
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
from cumulo.events.bus.names import trigger_group
from cumulo.events.cloudevent import events_from_http
from cumulo.events.event import Event
from cumulo.runtimes.local import openapi
from cumulo.runtimes.local.auth import BearerAuth
from cumulo.runtimes.local.dashboard import Dashboard
from cumulo.runtimes.local.http import answer, read_body
from cumulo.runtimes.local.jobs import JobRunner
from cumulo.runtimes.local.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
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


def problem(status: int, slug: str, title: str, detail: str, **headers: str) -> Response:
    return answer(contract.problem(status, slug, title, detail, "GatewayError"), **headers)


class Gateway:
    def __init__(self, platform: Platform):
        self.platform = platform
        self.started = time.time()
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
            middleware=[Middleware(BearerAuth, token=platform.settings.api_token)],
        )

    async def ingest(self, request: Request) -> Response:
        bus_name = request.query_params.get("bus", "default")
        topic = request.query_params.get("topic", "default")
        if bus_name not in self.platform.buses:
            return problem(404, "unknown-bus", "Unknown bus", f"no event bus named '{bus_name}'")
        try:
            body = await read_body(request, self.platform.settings.max_body_bytes)
            events = events_from_http(request.headers, body)
            bus = self.platform.buses[bus_name]
            offsets = await self.platform.telemetry.ingest(bus, bus_name, topic, events)
        except InvalidEventError as e:
            return answer(contract.invalid_request_response(e))
        except BusUnavailableError as e:
            return problem(503, "bus-unavailable", "Bus unavailable", str(e), retry_after="1")
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
            if isinstance(target, JobRunner):
                return await self.run_job(target, request, body)
            return await self.proxy(target, request, body)
        except InvalidEventError as e:
            return answer(contract.invalid_request_response(e))
        except WorkerStartError as e:
            return problem(503, "worker-start-failed", "Function unavailable", str(e))

    async def run_job(self, runner: JobRunner, request: Request, body: bytes) -> Response:
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

    async def proxy(self, pool, request: Request, body: bytes) -> Response:
        path = "/" + request.path_params.get("path", "")
        url_query = f"?{request.url.query}" if request.url.query else ""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        timeout = aiohttp.ClientTimeout(total=pool.function.spec.timeout)
        try:
            async with (
                pool.replica() as replica,
                pool.session.request(
                    request.method,
                    replica.url + path + url_query,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as answer,
            ):
                content = await answer.read()
        except TimeoutError:
            return problem(
                504,
                "function-timeout",
                "Function timed out",
                f"no answer within {timeout.total:g}s",
            )
        except aiohttp.ClientError as e:
            return problem(
                502, "worker-failed", "Worker failed", f"the worker dropped the request: {e}"
            )
        out_headers = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
        response = Response(content, status_code=answer.status)
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in out_headers
        ] + [(b"content-length", str(len(content)).encode())]
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
        """``?topic=&after=&limit=&bus=``: events in offset order, as the CLI lists them."""
        query = request.query_params
        bus = self.platform.buses.get(query.get("bus", "default"))
        if bus is None:
            return problem(
                404, "unknown-bus", "Unknown bus", f"no event bus named '{query.get('bus')}'"
            )
        messages = await bus.read(
            query.get("topic", "default"),
            after=int(query.get("after", 0)),
            limit=int(query.get("limit", 100)),
        )
        return JSONResponse([message_json(m) for m in messages])

    async def replay(self, request: Request) -> Response:
        """Body ``{"trigger" | "topic", "fromOffset" | "fromTime", "bus"}``."""
        try:
            ask = orjson.loads(await request.body())
        except orjson.JSONDecodeError as e:
            return problem(400, "invalid-replay", "Invalid replay request", f"not JSON: {e}")
        if mistake := replay_mistake(ask):
            return problem(400, "invalid-replay", "Invalid replay request", mistake)
        bus = self.platform.buses.get(ask.get("bus", "default"))
        if bus is None:
            return problem(404, "unknown-bus", "Unknown bus", "no such event bus")
        group = trigger_group(ask["trigger"]) if ask.get("trigger") else None
        count = await bus.replay(
            group=group,
            topic=ask.get("topic"),
            from_offset=ask.get("fromOffset"),
            from_time=ask.get("fromTime"),
        )
        return JSONResponse({"replayed": count})


def replay_mistake(ask: object) -> str | None:
    """What is wrong with a replay request's body, or None."""
    if not isinstance(ask, dict):
        return "the body must be a JSON object"
    if (ask.get("trigger") is None) == (ask.get("topic") is None):
        return "give exactly one of 'trigger' and 'topic'"
    if (ask.get("fromOffset") is None) == (ask.get("fromTime") is None):
        return "give exactly one of 'fromOffset' and 'fromTime'"
    return None
