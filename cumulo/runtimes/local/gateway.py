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
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cumulo.config import Settings
from cumulo.errors import (
    BusUnavailableError,
    InvalidEventError,
    WorkerStartError,
)
from cumulo.events.bus.base import Bus
from cumulo.events.bus.names import trigger_group
from cumulo.events.event import Event
from cumulo.events.sources.webhook import HttpSource
from cumulo.runtimes.local import api_input, openapi
from cumulo.runtimes.local.api_input import problem
from cumulo.runtimes.local.api_models import EventsQuery, Replay
from cumulo.runtimes.local.auth import BearerAuth
from cumulo.runtimes.local.hosts import FunctionHost, HttpAnswer
from cumulo.runtimes.local.http import EventReader, answer, read_body
from cumulo.runtimes.local.limits import HeaderLimits
from cumulo.runtimes.local.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cumulo.runtimes.local.sources import source_routes
from cumulo.runtimes.local.views import Status
from cumulo.runtimes.local.wiring import message_json
from cumulo.runtimes.worker import contract
from cumulo.spec.models import Trigger

Ingest = Callable[[Bus, str, str, Sequence[Event]], Awaitable[list[int]]]

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


@dataclass(frozen=True)
class GatewayParts:
    """What the gateway serves, handed over by the platform (:mod:`.platform`)."""

    settings: Settings
    buses: Mapping[str, Bus]  # filled as the platform starts them
    hosts: Mapping[str, FunctionHost]  # by function name
    triggers: Mapping[str, Trigger]  # every trigger of the project, by name
    ingest: Ingest  # publishes what POST /events accepted
    status: Status  # GET /api/status
    metrics: Callable[[], Awaitable[bytes]]  # GET /metrics
    webhooks: Callable[[str], HttpSource | None]  # POST /sources/<name>
    public: Collection[str] = frozenset()  # functions served without a token (live)
    publish_token: str | None = None  # what functions publish with when auth is on
    routes: Sequence[BaseRoute] = ()  # the dashboard's and the embedded Dapr bus's


class Gateway:
    def __init__(self, parts: GatewayParts):
        self.parts = parts
        settings = parts.settings
        self.started = time.time()
        self.reader = EventReader(settings)  # POST /events: the edge's limits
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
                *source_routes(parts.webhooks),
                *parts.routes,
            ],
            exception_handlers=api_input.EXCEPTION_HANDLERS,  # problem+json, never a 500
            middleware=[  # in order: the first is outermost
                Middleware(
                    HeaderLimits,
                    max_headers=settings.max_headers,
                    max_header_bytes=settings.max_header_bytes,
                ),
                Middleware(
                    BearerAuth,
                    token=settings.api_token,
                    public=parts.public,
                    publish_token=parts.publish_token,
                ),
            ],
        )

    async def ingest(self, request: Request) -> Response:
        bus_name = request.query_params.get("bus", "default")
        topic = request.query_params.get("topic", "default")
        bus = self.parts.buses.get(bus_name)
        if bus is None:
            return problem(404, "unknown-bus", "Unknown bus", f"no event bus named '{bus_name}'")
        try:
            events = await self.reader.read(request)
            offsets = await self.parts.ingest(bus, bus_name, topic, events)
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
        """A function's own endpoint: the request goes to its host, which counts it."""
        name = request.path_params["name"]
        host = self.parts.hosts.get(name)
        if host is None:
            return problem(
                404, "unknown-function", "Unknown function", f"no function named '{name}'"
            )
        path = forwarded_path(request)
        url_query = f"?{request.url.query}" if request.url.query else ""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        timeout = host.function.spec.timeout
        try:
            body = await read_body(request, self.parts.settings.max_body_bytes)
            answered = await host.request(
                request.method, path + url_query, headers, body, timeout=timeout
            )
        except InvalidEventError as e:
            return answer(contract.invalid_request_response(e))
        except WorkerStartError as e:
            return problem(503, "worker-start-failed", "Function unavailable", str(e))
        except ValueError as e:  # a header the worker's HTTP cannot carry
            return problem(400, "bad-request", "Bad request", str(e))
        except TimeoutError:
            return problem(
                504, "function-timeout", "Function timed out", f"no answer within {timeout:g}s"
            )
        except aiohttp.ClientError as e:
            return problem(
                502, "worker-failed", "Worker failed", f"the worker dropped the request: {e}"
            )
        return proxied(answered)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def metrics(self, request: Request) -> Response:
        body = await self.parts.metrics()
        return Response(body, headers={"content-type": METRICS_CONTENT_TYPE})

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.document())

    async def status(self, request: Request) -> Response:
        return JSONResponse(await self.parts.status())

    async def events(self, request: Request) -> Response:
        """``?topic=&after=&limit=&bus=`` (:class:`EventsQuery`): events in offset order."""
        ask = api_input.query(EventsQuery, request)
        bus = self.parts.buses.get(ask.bus)
        if bus is None:
            return problem(404, "unknown-bus", "Unknown bus", f"no event bus named '{ask.bus}'")
        messages = await bus.read(ask.topic, after=ask.after, limit=ask.limit)
        return JSONResponse([message_json(m) for m in messages])

    async def replay(self, request: Request) -> Response:
        """Body :class:`Replay`; 404 names an unknown trigger, bus or topic."""
        limit = self.parts.settings.api_max_body_bytes
        ask = await api_input.body(Replay, request, limit)
        target = await replay_target(self.parts.buses, self.parts.triggers, ask)
        if isinstance(target, Response):
            return target
        bus, group, topic = target
        count = await bus.replay(
            group=group, topic=topic, from_offset=ask.from_offset, from_time=ask.start_time
        )
        return JSONResponse({"replayed": count})


ReplayTarget = tuple[Bus, str | None, str | None]  # the bus, and a group or a topic


async def replay_target(
    buses: Mapping[str, Bus], triggers: Mapping[str, Trigger], ask: Replay
) -> ReplayTarget | Response:
    """The bus and the group (a trigger's) or topic a replay rewinds, or the 404 saying why not."""
    trigger = triggers.get(ask.trigger) if ask.trigger else None
    name = ask.bus or (trigger.spec.bus if trigger else "default")
    bus = buses.get(name)
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


def forwarded_path(request: Request) -> str:
    """What follows ``/fn/<name>`` as the client sent it (still percent-encoded), or ``/``."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    parts = raw.split(b"/", 3)
    return "/" + (parts[3].decode("latin-1") if len(parts) > 3 else "")


def proxied(answered: HttpAnswer) -> Response:
    """A function's answer as the gateway sends it on: without hop-by-hop headers."""
    response = Response(answered.body, status_code=answered.status)
    response.raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in answered.headers
        if k.lower() not in HOP_BY_HOP
    ] + [(b"content-length", str(len(answered.body)).encode())]
    return response
