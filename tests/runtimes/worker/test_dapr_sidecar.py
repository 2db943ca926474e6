"""A real Cumulo worker as the Dapr app of a real daprd, over a real Redis.

daprd reads the worker's ``/dapr/subscribe`` (generated from a trigger), delivers
what the dapr bus publishes, and acts on SUCCESS / RETRY / DROP with the
Resiliency policy and the ``deadLetterTopic`` that Cumulo generated from the
trigger's delivery policy.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis

from cumulo.errors import PermanentError, Retry
from cumulo.events.bus.dapr import DaprBus
from cumulo.events.bus.redis import RedisBus
from cumulo.events.event import Event, new_event
from cumulo.runtimes.dapr import component, resiliency, subscribe_entry
from cumulo.spec.models import TriggerBinding

APP_ID = "orders-fn"
DEAD = "orders-dead"
TRIGGER = TriggerBinding.model_validate(
    {
        "bus": "pubsub",
        "topic": "orders",
        "filters": [{"prefix": {"type": "order."}}],
        "delivery": {
            "retries": 2,
            "backoffPolicy": "linear",  # Dapr's constant policy: every retry waits 0.5 s
            "backoffDelay": 0.5,
            "deadLetterTopic": DEAD,
        },
    }
)


@dataclass
class Calls:
    """What the function saw: (event id, monotonic time) per attempt."""

    seen: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.seen.append((event.id, time.monotonic()))
        if event.type == "order.busy":
            raise Retry("busy")
        if event.type == "order.bad":
            raise PermanentError("malformed order")

    def times(self, event_id: str) -> list[float]:
        with self.lock:
            return [at for seen_id, at in self.seen if seen_id == event_id]


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def app(serve, start_dapr, dapr_redis_url):
    calls = Calls()
    worker = serve(calls, "cloudevent", dapr_subscriptions=[subscribe_entry(TRIGGER)])
    resources = [
        component("pubsub", dapr_redis_url, scopes=[APP_ID]),
        resiliency("orders-fn", [TRIGGER], scopes=[APP_ID]),
    ]
    sidecar = start_dapr(resources, app_id=APP_ID, app_port=worker.port)
    eventually(lambda: bool(sidecar.get("/v1.0/metadata").get("subscriptions")))
    return calls, sidecar


async def publish(sidecar, *events: Event, topic: str = "orders") -> None:
    async with DaprBus(sidecar.bus_url("pubsub")) as bus:
        await bus.publish(topic, events)


async def dead_letters(url: str) -> list[Event]:
    async with RedisBus(url) as bus:
        return [message.event for message in await bus.read(DEAD)]


def pending(url: str, topic: str) -> int:
    """Entries delivered to the app's consumer group and not acknowledged yet."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.xpending(topic, APP_ID)["pending"])
    finally:
        client.close()


def stream_length(url: str, topic: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.xlen(topic))
    finally:
        client.close()


def test_the_sidecar_subscribes_with_the_generated_routes_and_dead_letter_topic(app) -> None:
    _, sidecar = app
    [subscription] = sidecar.get("/v1.0/metadata")["subscriptions"]
    assert (subscription["pubsubname"], subscription["topic"]) == ("pubsub", "orders")
    assert subscription["deadLetterTopic"] == DEAD
    rule, default = subscription["rules"]  # Dapr lists the default route as a last rule
    assert rule == {"match": 'event.type.startsWith("order.")', "path": "/dapr/events"}
    assert default["path"] == "/dapr/skip"


async def test_success_delivers_once_and_acks(app, dapr_redis_url) -> None:
    calls, sidecar = app
    event = new_event("order.placed", "/shop", {"order": 1})
    await publish(sidecar, event)
    eventually(lambda: len(calls.times(event.id)) == 1)
    eventually(lambda: pending(dapr_redis_url, "orders") == 0)
    time.sleep(1.0)  # no redelivery after SUCCESS
    assert len(calls.times(event.id)) == 1
    assert await dead_letters(dapr_redis_url) == []


async def test_an_event_no_rule_matches_is_not_delivered(app, dapr_redis_url) -> None:
    calls, sidecar = app
    skipped, wanted = new_event("audit.log", "/shop"), new_event("order.placed", "/shop")
    await publish(sidecar, skipped, wanted)
    eventually(lambda: len(calls.times(wanted.id)) == 1)
    eventually(lambda: pending(dapr_redis_url, "orders") == 0)
    assert calls.times(skipped.id) == []
    assert await dead_letters(dapr_redis_url) == []  # skipped, not dead-lettered


async def test_retry_is_redelivered_per_the_policy_then_dead_lettered(app, dapr_redis_url) -> None:
    calls, sidecar = app
    event = new_event("order.busy", "/shop", {"order": 2})
    await publish(sidecar, event)
    eventually(lambda: len(calls.times(event.id)) == 3)  # the first attempt and 2 retries
    times = calls.times(event.id)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(0.45 <= gap < 3.0 for gap in gaps), gaps
    eventually(lambda: stream_length(dapr_redis_url, DEAD) == 1)
    [dead] = await dead_letters(dapr_redis_url)
    assert (dead.id, dead.source, dead.data) == (event.id, "/shop", {"order": 2})
    time.sleep(1.0)
    assert len(calls.times(event.id)) == 3
    assert pending(dapr_redis_url, "orders") == 0


async def test_permanent_error_is_dropped_to_the_dead_letter_topic_at_once(
    app, dapr_redis_url
) -> None:
    calls, sidecar = app
    event = new_event("order.bad", "/shop", {"order": 3})
    started = time.monotonic()
    await publish(sidecar, event)
    eventually(lambda: stream_length(dapr_redis_url, DEAD) == 1)
    assert time.monotonic() - started < 5.0
    [dead] = await dead_letters(dapr_redis_url)
    assert (dead.id, dead.type) == (event.id, "order.bad")
    assert len(calls.times(event.id)) == 1  # DROP is never retried
    assert pending(dapr_redis_url, "orders") == 0
