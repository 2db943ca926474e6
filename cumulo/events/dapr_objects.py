"""Dapr's objects for Cumulo's triggers: one renderer for self-hosted sidecars and the cluster.

The embedded platform's sidecars (:mod:`cumulo.runtimes.dapr`) and the rendered
cluster objects (:mod:`cumulo.manifests.dapr`) both build their Component,
Subscription and Resiliency documents here. They differ only in what they hand
over: the metadata block (a cluster object has a namespace and labels), the
Component's type and metadata items (plain values self-hosted, Secret
references on a cluster), and the scopes.

What a trigger means to Dapr is decided here once:

- the routes: the trigger's filters as one CEL rule to ``route``, and a default
  route to :data:`SKIP_ROUTE` (Dapr dead-letters what no rule matches unless a
  default route takes it); no filter, every event to ``route``;
- the retry policy and timeout per pub/sub component
  (:func:`cumulo.events.dapr_rules.retry_policy`), policies named
  ``retry-<key>`` and ``timeout-<key>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cumulo.events.dapr_rules import duration, filter_expression, retry_policy
from cumulo.spec.models import Delivery, Filter, TriggerBinding

API_V1 = "dapr.io/v1alpha1"
API_SUBSCRIPTION = "dapr.io/v2alpha1"
EVENTS_ROUTE = "/dapr/events"  # where a worker takes Dapr's deliveries
SKIP_ROUTE = "/dapr/skip"  # a subscription's default route: events no rule matched

COMPONENT_TYPES = {"redis": "pubsub.redis", "kafka": "pubsub.kafka", "nats": "pubsub.jetstream"}


def _document(
    api: str, kind: str, metadata: Mapping[str, Any], spec: Any, scopes: Iterable[str]
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": api,
        "kind": kind,
        "metadata": dict(metadata),
        "spec": spec,
    }
    if scopes := list(scopes):
        document["scopes"] = scopes
    return document


def component(
    metadata: Mapping[str, Any],
    broker_kind: str,
    items: list[dict[str, Any]],
    *,
    scopes: Iterable[str] = (),
) -> dict[str, Any]:
    """The ``pubsub.*`` Component for a ``redis``, ``kafka`` or ``nats`` broker."""
    spec = {"type": COMPONENT_TYPES[broker_kind], "version": "v1", "metadata": items}
    return _document(API_V1, "Component", metadata, spec, scopes)


def trigger_filters(trigger: TriggerBinding) -> list[Filter]:
    """The trigger's filters: its dialects, and the classic ``filter.attributes`` as exact."""
    filters = list(trigger.filters)
    classic = (trigger.filter or {}).get("attributes")
    if classic:
        filters.append(Filter(exact=classic))
    return filters


def routes(trigger: TriggerBinding, route: str) -> dict[str, Any]:
    """A subscription's ``routes``: the filters as a CEL rule to ``route``, others skipped."""
    match = filter_expression(trigger_filters(trigger))
    if match is None:
        return {"default": route}
    return {"rules": [{"match": match, "path": route}], "default": SKIP_ROUTE}


def subscription_spec(trigger: TriggerBinding, pubsub: str, route: str) -> dict[str, Any]:
    """The trigger as a subscription's spec (also one entry of ``GET /dapr/subscribe``)."""
    return {
        "pubsubname": pubsub,
        "topic": trigger.topic,
        "routes": routes(trigger, route),
        "deadLetterTopic": trigger.delivery.dead_letter_topic,
    }


def subscription(
    metadata: Mapping[str, Any],
    trigger: TriggerBinding,
    *,
    pubsub: str,
    route: str = EVENTS_ROUTE,
    scopes: Iterable[str] = (),
) -> dict[str, Any]:
    """The trigger as a declarative ``Subscription`` (``dapr.io/v2alpha1``)."""
    spec = subscription_spec(trigger, pubsub, route)
    return _document(API_SUBSCRIPTION, "Subscription", metadata, spec, scopes)


@dataclass(frozen=True)
class Inbound:
    """The inbound policy of one pub/sub component: retries, and a timeout when set."""

    key: str  # names the policies: retry-<key>, timeout-<key>
    delivery: Delivery
    timeout: float | None = None


def resiliency(
    metadata: Mapping[str, Any], inbound: Mapping[str, Inbound], *, scopes: Iterable[str] = ()
) -> dict[str, Any]:
    """One Resiliency with an inbound policy per pub/sub component (``inbound``'s keys)."""
    retries: dict[str, Any] = {}
    timeouts: dict[str, str] = {}
    targets: dict[str, Any] = {}
    for pubsub, policy in inbound.items():
        names = {"retry": f"retry-{policy.key}"}
        retries[names["retry"]] = retry_policy(policy.delivery)
        if policy.timeout is not None:
            names["timeout"] = f"timeout-{policy.key}"
            timeouts[names["timeout"]] = duration(policy.timeout)
        targets[pubsub] = {"inbound": names}
    policies: dict[str, Any] = {"retries": retries}
    if timeouts:
        policies["timeouts"] = timeouts
    spec = {"policies": policies, "targets": {"components": targets}}
    return _document(API_V1, "Resiliency", metadata, spec, scopes)
