"""Dapr Component, Resiliency and Subscription as Cumulo generates them, checked against Dapr's CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.errors import BusError, BusOperationUnsupportedError, SpecError, UnknownBackendError
from cumulo.events.bus import bus_from_url
from cumulo.events.bus.dapr import DaprBus, DaprSettings
from cumulo.events.dapr_objects import EVENTS_ROUTE
from cumulo.manifests.schemas import crd_schema, validate_manifest
from cumulo.runtimes.dapr import (
    component,
    filter_expression,
    resiliency,
    retry_policy,
    subscribe_entry,
    subscription,
    trigger_filters,
)
from cumulo.runtimes.worker.dapr import subscription_documents
from cumulo.spec.models import Delivery, TriggerBinding

CRDS = Path(__file__).resolve().parents[2] / ".." / "shared" / "crds" / "dapr"


def schema(name: str, version: str = "v1alpha1") -> dict:
    return crd_schema(CRDS / f"{name}.yaml", version)


def trigger(**fields: object) -> TriggerBinding:
    return TriggerBinding.model_validate({"bus": "pubsub", "topic": "orders", **fields})


# --- Component -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "expected"),
    [
        ("redis://127.0.0.1:6390/3", "pubsub.redis", {"redisHost": "127.0.0.1:6390", "redisDB": "3"}),
        ("rediss://:pw@cache:6380", "pubsub.redis", {"redisHost": "cache:6380", "redisPassword": "pw",
                                                     "redisDB": "0", "enableTLS": "true"}),
        ("nats://127.0.0.1:4333", "pubsub.jetstream", {"natsURL": "nats://127.0.0.1:4333"}),
        ("kafka://k1:9092", "pubsub.kafka", {"brokers": "k1:9092", "authType": "none"}),
    ],
)  # fmt: skip
def test_component_over_each_broker(url: str, kind: str, expected: dict) -> None:
    document = component("pubsub", url, scopes=["orders-fn"])
    validate_manifest(document, schema("components"))
    assert document["spec"]["type"] == kind and document["scopes"] == ["orders-fn"]
    assert {m["name"]: m["value"] for m in document["spec"]["metadata"]} == expected


def test_component_for_an_unknown_broker_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="no Dapr pub/sub for 'sqlite'"):
        component("pubsub", "sqlite:///x.db")


# --- Resiliency ------------------------------------------------------------------------


def test_the_policy_mapping_is_the_cluster_renderers() -> None:
    linear = Delivery(retries=5, backoff_policy="linear", backoff_delay=0.25)
    assert retry_policy(linear) == {"policy": "constant", "duration": "250ms", "maxRetries": 5}
    exponential = Delivery(retries=3, backoff_delay=2, max_backoff=300)
    assert retry_policy(exponential) == {
        "policy": "exponential",
        "maxInterval": "300s",
        "maxRetries": 3,
    }


def test_resiliency_targets_the_components_inbound() -> None:
    triggers = [
        trigger(delivery={"retries": 2, "timeout": "30s"}),
        trigger(topic="models", delivery={"retries": 2, "timeout": 30, "deadLetterTopic": "x"}),
        trigger(bus="other", delivery={"retries": 0}),
    ]
    document = resiliency("fn", triggers, scopes=["fn"])
    validate_manifest(document, schema("resiliency"))
    spec = document["spec"]
    assert spec["targets"]["components"] == {
        "pubsub": {"inbound": {"retry": "retry-pubsub", "timeout": "timeout-pubsub"}},
        "other": {"inbound": {"retry": "retry-other"}},
    }
    assert spec["policies"]["timeouts"] == {"timeout-pubsub": "30s"}
    assert spec["policies"]["retries"]["retry-other"]["maxRetries"] == 0
    assert document["scopes"] == ["fn"]


def test_triggers_on_one_component_must_share_a_policy() -> None:
    triggers = [trigger(delivery={"retries": 2}), trigger(delivery={"retries": 3})]
    with pytest.raises(SpecError, match=r"\[1\]\.delivery: Dapr applies one inbound policy"):
        resiliency("fn", triggers)


# --- Subscription ----------------------------------------------------------------------


def test_subscription_routes_to_the_worker_with_the_dead_letter_topic() -> None:
    t = trigger(delivery={"deadLetterTopic": "orders-dead"})
    document = subscription("orders", t, scopes=["fn"])
    validate_manifest(document, schema("subscription", "v2alpha1"))
    assert document["spec"] == {
        "pubsubname": "pubsub",
        "topic": "orders",
        "routes": {"default": EVENTS_ROUTE},
        "deadLetterTopic": "orders-dead",
    }


def test_the_worker_accepts_the_subscribe_entry_as_it_is() -> None:
    entry = subscribe_entry(trigger(filters=[{"prefix": {"type": "ml."}}]))
    assert subscription_documents([entry]) == [entry]


def test_filters_become_a_cel_routing_rule() -> None:
    t = trigger(
        filter={"attributes": {"type": "ml.trained"}},
        filters=[
            {"suffix": {"subject": ".csv"}},
            {"any": [{"exact": {"source": "/a"}}, {"not": {"prefix": {"type": "x"}}}]},
        ],
    )
    expected = (
        'event.subject.endsWith(".csv")'
        ' && (event.source == "/a" || !(event.type.startsWith("x")))'
        ' && event.type == "ml.trained"'
    )
    assert filter_expression(trigger_filters(t)) == expected
    document = subscription("ml", t)
    validate_manifest(document, schema("subscription", "v2alpha1"))
    assert document["spec"]["routes"] == {
        "rules": [{"match": expected, "path": EVENTS_ROUTE}],
        "default": "/dapr/skip",  # else Dapr dead-letters what no rule matches
    }


def test_no_filters_no_rule() -> None:
    assert trigger_filters(trigger()) == []
    assert subscribe_entry(trigger())["routes"] == {"default": EVENTS_ROUTE}


# --- the bus's URL and its push-only contract ------------------------------------------


def test_url() -> None:
    settings = DaprSettings.from_url("dapr://127.0.0.1:50011/orders-pubsub")
    assert (settings.host, settings.port, settings.pubsub) == ("127.0.0.1", 50011, "orders-pubsub")
    assert DaprSettings.from_url("dapr://sidecar/pubsub").port == 50001


@pytest.mark.parametrize("url", ["dapr://127.0.0.1:50001", "dapr://127.0.0.1:50001/a/b"])
def test_url_names_one_component(url: str) -> None:
    with pytest.raises(BusError, match="names one pub/sub component"):
        DaprSettings.from_url(url)


def test_not_a_dapr_url() -> None:
    with pytest.raises(UnknownBackendError):
        DaprSettings.from_url("redis://127.0.0.1/0")


def test_bus_from_url_picks_dapr() -> None:
    assert isinstance(bus_from_url("dapr://127.0.0.1:50001/pubsub"), DaprBus)


@pytest.mark.parametrize(
    ("operation", "call"),
    [
        ("subscribe", lambda bus: bus.subscribe("g", "t")),
        ("fetch", lambda bus: bus.fetch("g", limit=1, lease=1)),
        ("settle", lambda bus: bus.settle("g", [])),
        ("wait", lambda bus: bus.wait("g", 1)),
        ("replay", lambda bus: bus.replay(group="g")),
        ("read", lambda bus: bus.read("t")),
        ("topics", lambda bus: bus.topics()),
        ("groups", lambda bus: bus.groups()),
        ("trim", lambda bus: bus.trim()),
    ],
)
async def test_pull_operations_say_dapr_delivers_by_push(operation: str, call) -> None:
    bus = DaprBus("dapr://127.0.0.1:50001/pubsub")
    with pytest.raises(BusOperationUnsupportedError, match="delivers by push through the sidecar"):
        await call(bus)
