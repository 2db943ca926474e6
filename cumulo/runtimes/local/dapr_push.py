"""An embedded Dapr bus: ``cumulo up`` runs the sidecars, and Dapr pushes events to it.

URL: ``dapr://<pub/sub component>?broker=<broker URL>``, e.g.
``dapr://pubsub?broker=redis://127.0.0.1:6379/0`` (``nats://`` and
``kafka://`` brokers work too; see :func:`cumulo.runtimes.dapr.component`).
The cluster renderer reads the same URL as ``dapr://<component>`` (a Component
that exists there). A ``dapr://host:port/<component>`` URL (no ``broker``)
names a sidecar that is already running: it can be published to, but nothing
is delivered from it.

What ``cumulo up`` starts for an embedded bus (:mod:`.daprd`):

- one publishing sidecar (no app): the bus publishes through it (gRPC);
- after the gateway listens, one sidecar per trigger on the bus, app-id
  ``<project>-<trigger>`` (Dapr's consumer group, as a pull dispatcher's group
  is per trigger), app port = the gateway's, with the pub/sub Component, the
  trigger's Resiliency (retries, backoff, timeout) and a declarative
  Subscription (topic, the filter as a CEL rule, route
  ``/dapr/deliver/<trigger>``, ``deadLetterTopic``). One sidecar per trigger
  because Dapr keeps one subscription per topic per app, and one inbound
  policy per component per app.

``POST /dapr/deliver/<trigger>`` (:meth:`DaprPush.deliver`) re-checks the filter
(what CEL cannot see was widened), delivers to the function and answers:
``SUCCESS`` once the replies are published; ``RETRY`` for a retryable failure
while the trigger's retries last (attempts are counted per event in memory);
otherwise Cumulo dead-letters the event itself, with its ``cumuloerror*``
reasons (:func:`cumulo.events.delivery.dead_letter`), to the trigger's
dead-letter topic, and answers ``SUCCESS``. Dapr's own dead-lettering (which
drops the reasons) is left for events the gateway could not answer.
Deliveries carry a random ``dapr-api-token``; others get 401.

Each event goes through the trigger's
:class:`~cumulo.events.engine.DeliveryEngine`, as pulled ones do: ``maxEventAge``
(measured from the event's ``time``, when it has one), the trigger's dedup,
the one settlement decision and the delivery middleware (metrics, spans).
Not carried over from pull delivery: replay and consumer-group listings.
Listing a topic (``/api/events``) reads the broker through its own bus when
the broker is Redis.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.config import Settings
from cumulo.errors import BusError, InvalidEventError, RuntimeFailure
from cumulo.events.bus import Bus, BusSettings, bus_from_url
from cumulo.events.bus.base import DeadLetter, Message, Nack, Settlement
from cumulo.events.cloudevent import events_from_http
from cumulo.events.engine import DeliveryEngine, TriggerStats
from cumulo.events.event import Event
from cumulo.events.filters import compile_filter
from cumulo.events.middleware import DeliveryMiddleware
from cumulo.runtimes.dapr import component, resiliency, subscription
from cumulo.runtimes.local.daprd import Sidecar, daprd_binary, launch
from cumulo.runtimes.local.hosts import FunctionHost
from cumulo.runtimes.local.wiring import bus_url
from cumulo.spec import Project
from cumulo.spec.models import EventBus, Trigger

log = logging.getLogger("cumulo.dapr")

ROUTE = "/dapr/deliver/"
SUCCESS, RETRY = "SUCCESS", "RETRY"  # Dapr's answers
TOKEN_HEADER = "dapr-api-token"
DAPR_EXTENSIONS = ("pubsubname", "topic", "traceid", "tracestate")
CLAIM_MARGIN_SECONDS = 60.0
LAUNCH_TRIES = 3  # a sidecar's free ports can be taken before it binds them


@dataclass(frozen=True, slots=True)
class EmbeddedUrl:
    component: str
    broker: str

    @classmethod
    def parse(cls, url: str) -> EmbeddedUrl | None:
        """The parts of ``dapr://<component>?broker=<url>``; ``None`` for other URLs."""
        parts = urlsplit(url)
        broker = parse_qs(parts.query).get("broker")
        if parts.scheme != "dapr" or not broker:
            return None
        return cls(parts.netloc or parts.path.strip("/") or "pubsub", broker[0])


class PushedTrigger:
    """A trigger Dapr delivers: its engine, and how many of its events are being handled."""

    def __init__(self, engine: DeliveryEngine):
        self.engine = engine
        self.accepts = compile_filter(engine.trigger.spec)
        self.inflight = 0

    @property
    def trigger(self) -> Trigger:
        return self.engine.trigger

    @property
    def stats(self) -> TriggerStats:
        return self.engine.stats


class DaprPush:
    """The embedded Dapr buses of a platform: their sidecars and the delivery routes.

    ``buses`` and ``hosts`` are the platform's live mappings (buses by name,
    function hosts by function name); ``middleware`` is the delivery middleware
    every pushed delivery goes through, as pulled ones do."""

    def __init__(
        self,
        project: Project,
        settings: Settings,
        state: Path,
        *,
        buses: Mapping[str, Bus],
        hosts: Mapping[str, FunctionHost],
        middleware: Sequence[DeliveryMiddleware] = (),
    ):
        self.project = project
        self.settings = settings
        self.folder = state / "dapr"
        self.state = state
        self.buses = buses
        self.hosts = hosts
        self.middleware = middleware
        self.embedded: dict[str, EmbeddedUrl] = {}  # by bus name
        self.sidecars: list[Sidecar] = []
        self.attempts: dict[tuple[str, str, str], int] = {}
        self.token = secrets.token_urlsafe(24)
        self.triggers: dict[str, PushedTrigger] = {}  # by trigger name

    def app_id(self, suffix: str) -> str:
        name = f"{self.project.root.resolve().name}-{suffix}".lower()
        return re.sub(r"[^a-z0-9-]+", "-", name).strip("-")

    def routes(self) -> list[Route]:
        return [
            Route("/dapr/subscribe", self.subscribe),
            Route(ROUTE + "{trigger}", self.deliver, methods=["POST"]),
        ]

    def pushes(self, trigger: Trigger) -> bool:
        """Whether Dapr delivers this trigger's events (no pull dispatcher then)."""
        return trigger.spec.bus in self.embedded

    # --- sidecars ------------------------------------------------------------------

    async def open_bus(self, name: str, resource: EventBus) -> Bus | None:
        """The bus for an embedded Dapr URL, its sidecar started; ``None`` for other URLs."""
        url = bus_url(resource, self.project.root, self.state, self.settings)
        embedded = EmbeddedUrl.parse(url)
        if embedded is None:
            return None
        resources = [component(embedded.component, embedded.broker)]
        sidecar = await self._start(name, resources, app_port=None)
        reader = bus_from_url(embedded.broker) if embedded.broker.startswith("redis") else None
        bus_settings = BusSettings(resource.spec.dedup_window, resource.spec.retention, {})
        self.embedded[name] = embedded
        address = f"dapr://127.0.0.1:{sidecar.grpc_port}/{embedded.component}"
        from cumulo.runtimes.local.dapr_embedded import EmbeddedDaprBus  # the dapr extra

        return EmbeddedDaprBus(address, bus_settings, reader)

    async def start_subscribers(self, port: int) -> None:
        """One sidecar per trigger on an embedded bus, delivering to the gateway at ``port``."""
        pushed = [t for t in self.project.all_triggers().values() if self.pushes(t)]
        self.triggers = {
            t.name: PushedTrigger(
                DeliveryEngine(
                    t,
                    self.hosts[t.spec.function],
                    timeout=self._timeout(t),
                    middleware=self.middleware,
                )
            )
            for t in pushed
        }
        await asyncio.gather(
            *(self._start(t.name, self._resources(t), app_port=port) for t in pushed)
        )

    def _resources(self, trigger: Trigger) -> list[dict[str, Any]]:
        embedded = self.embedded[trigger.spec.bus]
        binding = trigger.spec.model_copy(update={"bus": embedded.component})
        app_id = self.app_id(trigger.name)
        pubsub = component(embedded.component, embedded.broker)
        if embedded.broker.startswith("redis"):  # don't reclaim an event still being delivered
            claim = f"{self._longest_delivery(trigger) + CLAIM_MARGIN_SECONDS:g}s"
            pubsub["spec"]["metadata"].append({"name": "processingTimeout", "value": claim})
        declared = subscription(app_id, binding, route=ROUTE + trigger.name, scopes=[app_id])
        # Dapr dead-letters what no rule matches: those come back here and are skipped
        declared["spec"]["routes"].setdefault("default", ROUTE + trigger.name)
        return [pubsub, resiliency(f"{app_id}-resiliency", [binding], scopes=[app_id]), declared]

    def _timeout(self, trigger: Trigger) -> float:
        function = self.project.functions[trigger.spec.function]
        return trigger.spec.delivery.timeout or function.spec.timeout

    def _longest_delivery(self, trigger: Trigger) -> float:
        policy = trigger.spec.delivery
        return (self._timeout(trigger) + policy.max_backoff) * (policy.retries + 1)

    async def _start(self, name: str, resources: list[Any], *, app_port: int | None) -> Sidecar:
        app_id = self.app_id(name)
        binary = daprd_binary(self.settings.daprd)
        for attempt in range(1, LAUNCH_TRIES + 1):
            sidecar = launch(
                binary, self.folder / app_id, resources, app_id=app_id, app_port=app_port,
                app_token=self.token,
            )  # fmt: skip
            self.sidecars.append(sidecar)
            try:
                async with aiohttp.ClientSession() as session:
                    await sidecar.wait_healthy(session)
                return sidecar
            except RuntimeFailure:
                # its free ports were picked, then taken by someone else first: pick again
                if attempt == LAUNCH_TRIES or "address already in use" not in sidecar.log_tail():
                    raise
        raise AssertionError("not reached: the last try returns or raises")

    async def stop(self) -> None:
        await asyncio.gather(*(sidecar.stop() for sidecar in self.sidecars))

    # --- delivery ------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        return JSONResponse([])  # the subscriptions are declarative, one per sidecar

    async def deliver(self, request: Request) -> Response:
        pushed = self.triggers.get(request.path_params["trigger"])
        if not same_token(request.headers.get(TOKEN_HEADER), self.token):
            return JSONResponse({"status": "DROP", "message": "unauthorized"}, status_code=401)
        if pushed is None:
            return JSONResponse({"status": "DROP", "message": "unknown trigger"}, 404)
        try:
            events = events_from_http(request.headers, await request.body())
        except InvalidEventError as e:
            return JSONResponse({"status": "DROP", "message": str(e)})
        status = SUCCESS
        for event in events:
            status = await self._handle(pushed, _without_dapr(event))
        return JSONResponse({"status": status})

    async def _handle(self, pushed: PushedTrigger, event: Event) -> str:
        if not pushed.accepts(event):
            return SUCCESS
        trigger = pushed.trigger
        key = (trigger.name, event.source, event.id)
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        pushed.inflight += 1
        try:
            status = await push_one(pushed.engine, self.buses[trigger.spec.bus], event, attempt)
        finally:
            pushed.inflight -= 1
        if status == SUCCESS:
            self.attempts.pop(key, None)
        return status


async def push_one(engine: DeliveryEngine, bus: Bus, event: Event, attempt: int) -> str:
    """Run one pushed event through the trigger's engine and carry out its settlement on
    ``bus``; Dapr's answer (``RETRY`` also when the bus failed: Dapr brings it back)."""
    message = Message(0, engine.trigger.spec.topic, event, published_at(event), attempt)
    record = await engine.attempt(message)
    while record.settlement is not None:
        try:
            status = await _carry_out(bus, record.settlement)
        except InvalidEventError as error:
            if isinstance(record.settlement, DeadLetter):
                log.exception("trigger %s: dead letter refused", engine.trigger.name)
                return RETRY
            engine.refused(record, error)
            continue
        except BusError:
            return RETRY
        engine.finished(record)
        return status
    return RETRY


async def _carry_out(bus: Bus, settlement: Settlement) -> str:
    """Publish what a settlement carries; Dapr's answer for it."""
    if isinstance(settlement, Nack):
        return RETRY  # Dapr's resiliency policy waits and delivers again
    if isinstance(settlement, DeadLetter):
        await bus.publish(settlement.topic, [settlement.event], dedup=False)
        return SUCCESS
    for topic in dict.fromkeys(topic for topic, _ in settlement.emit):
        await bus.publish(topic, [reply for to, reply in settlement.emit if to == topic])
    return SUCCESS


def published_at(event: Event) -> float:
    """When a pushed event was published, as well as it can be told: its ``time`` (UTC when
    it has no offset), else now. ``maxEventAge`` measures from it."""
    try:
        moment = datetime.fromisoformat(str(event.time))
    except ValueError:
        return time.time()
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def same_token(given: str | None, token: str) -> bool:
    """Whether a ``dapr-api-token`` header is the sidecars' token (constant time)."""
    return given is not None and hmac.compare_digest(given.encode("latin-1"), token.encode())


def _without_dapr(event: Event) -> Event:
    """The event as Cumulo published it: without the extensions Dapr adds."""
    return event.with_attributes(**dict.fromkeys(DAPR_EXTENSIONS))
