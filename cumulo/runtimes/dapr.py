"""Dapr objects for a self-hosted sidecar: pub/sub Component, Resiliency, subscriptions.

Pure functions returning dicts in Dapr's CRD shapes (``dapr.io``), for a
sidecar's ``--resources-path`` and for the worker's ``GET /dapr/subscribe``.
The delivery-policy and filter mappings are the cluster renderer's
(:mod:`cumulo.events.dapr_rules`: ``retry_policy``, ``filter_expression``), so
self-hosted and cluster Dapr behave alike; what differs here is that nothing
needs a Kubernetes Secret or a rendering context:

- :func:`component`: the pub/sub Component over the broker a bus URL names,
  with plain values (``redis://`` -> ``pubsub.redis`` with ``redisDB``,
  ``nats://`` -> ``pubsub.jetstream``, ``kafka://`` -> ``pubsub.kafka``).
- :func:`resiliency`: one inbound retry (and timeout) policy per pub/sub
  component, from the triggers' delivery policies. Dapr attaches inbound
  policies to a component, not to a subscription, so the triggers of one app
  on one component must agree (:class:`SpecError` otherwise).
- :func:`subscribe_entry` (one entry of the ``/dapr/subscribe`` answer) and
  :func:`subscription` (the declarative ``Subscription``): topic, the
  worker's route, ``deadLetterTopic``, and the trigger's filters as a CEL
  routing rule (an event no rule matches is acknowledged and not delivered).

Delivery semantics under Dapr (checked against daprd 1.16 in the tests):

- ``retries`` -> ``maxRetries``; ``linear`` -> ``constant`` every
  ``backoff_delay``; ``exponential`` -> Dapr's (500 ms start, x1.5, +/-50%
  jitter, capped at ``max_backoff``); ``timeout`` -> an inbound timeout.
- ``RETRY`` (``Retry`` or any exception) is retried by the sidecar per the
  policy; ``Retry(delay=...)`` cannot steer it. Once retries are exhausted
  Dapr forwards the event to ``deadLetterTopic`` and acknowledges it.
- ``DROP`` (``PermanentError``) is not retried: Dapr (>= 1.12) forwards it to
  ``deadLetterTopic`` at once. Dapr forwards the event as published, so the
  dead letter lacks Cumulo's ``cumuloerror*`` reason extensions (the worker's
  DROP answer and log carry the reason).
- ``max_event_age`` has no subscription-side counterpart (Dapr's TTL is set
  when publishing) and is not carried.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cumulo.errors import Problem, SpecError
from cumulo.events.dapr_rules import filter_expression, retry_policy
from cumulo.runtimes.worker.dapr import EVENTS_ROUTE, SKIP_ROUTE
from cumulo.spec.models import Delivery, Filter, TriggerBinding

__all__ = [
    "component",
    "filter_expression",
    "resiliency",
    "retry_policy",
    "subscribe_entry",
    "subscription",
    "trigger_filters",
]

API_VERSION = "dapr.io/v1alpha1"
SUBSCRIPTION_API_VERSION = "dapr.io/v2alpha1"


def _seconds(value: float) -> str:
    """A Go duration (``1.5s``, ``300s``) for a number of seconds."""
    return f"{value:g}s"


def _metadata(**values: str) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in values.items() if value]


# --- Component ---------------------------------------------------------------------


def component(name: str, broker_url: str, *, scopes: Iterable[str] = ()) -> dict[str, Any]:
    """The ``pubsub.*`` Component named ``name`` over the broker at ``broker_url``."""
    parts = urlsplit(broker_url)
    if parts.scheme in ("redis", "rediss"):
        kind, metadata = "pubsub.redis", _redis_metadata(parts)
    elif parts.scheme == "nats":
        kind = "pubsub.jetstream"
        metadata = _metadata(natsURL=f"nats://{parts.hostname}:{parts.port or 4222}")
    elif parts.scheme == "kafka":
        kind = "pubsub.kafka"
        metadata = _metadata(brokers=parts.netloc, authType="none")
    else:
        raise SpecError(
            [Problem("dapr component", name, f"no Dapr pub/sub for {parts.scheme!r} URLs")]
        )
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": kind, "version": "v1", "metadata": metadata},
    }
    if scopes := list(scopes):
        document["scopes"] = scopes
    return document


def _redis_metadata(parts: Any) -> list[dict[str, str]]:
    db = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return _metadata(
        redisHost=f"{parts.hostname or 'localhost'}:{parts.port or 6379}",
        redisPassword=parts.password or "",
        redisDB=db,
        enableTLS="true" if parts.scheme == "rediss" else "",
    )


# --- Resiliency --------------------------------------------------------------------


def resiliency(
    name: str, triggers: Iterable[TriggerBinding], *, scopes: Iterable[str] = ()
) -> dict[str, Any]:
    """One Resiliency with an inbound policy per pub/sub component the triggers use."""
    by_component = _delivery_per_component(triggers)
    retries: dict[str, Any] = {}
    timeouts: dict[str, str] = {}
    targets: dict[str, Any] = {}
    for pubsub, delivery in by_component.items():
        inbound = {"retry": f"{pubsub}-retry"}
        retries[inbound["retry"]] = retry_policy(delivery)
        if delivery.timeout is not None:
            inbound["timeout"] = f"{pubsub}-timeout"
            timeouts[inbound["timeout"]] = _seconds(delivery.timeout)
        targets[pubsub] = {"inbound": inbound}
    policies: dict[str, Any] = {"retries": retries}
    if timeouts:
        policies["timeouts"] = timeouts
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Resiliency",
        "metadata": {"name": name},
        "spec": {"policies": policies, "targets": {"components": targets}},
    }
    if scopes := list(scopes):
        document["scopes"] = scopes
    return document


def _delivery_per_component(triggers: Iterable[TriggerBinding]) -> dict[str, Delivery]:
    chosen: dict[str, Delivery] = {}
    problems: list[Problem] = []
    for index, trigger in enumerate(triggers):
        seen = chosen.setdefault(trigger.bus, trigger.delivery)
        if _policy_fields(seen) != _policy_fields(trigger.delivery):
            problems.append(
                Problem(
                    "dapr resiliency",
                    f"[{index}].delivery",
                    f"Dapr applies one inbound policy per pub/sub component: the triggers"
                    f" on '{trigger.bus}' must share retries, backoff and timeout",
                )
            )
    if problems:
        raise SpecError(problems)
    return chosen


def _policy_fields(delivery: Delivery) -> tuple[Any, ...]:
    return (retry_policy(delivery), delivery.timeout)


# --- Subscription ------------------------------------------------------------------


def subscribe_entry(trigger: TriggerBinding, *, route: str = EVENTS_ROUTE) -> dict[str, Any]:
    """The trigger as one entry of the worker's ``GET /dapr/subscribe`` answer."""
    entry: dict[str, Any] = {
        "pubsubname": trigger.bus,
        "topic": trigger.topic,
        "routes": _routes(trigger, route),
        "deadLetterTopic": trigger.delivery.dead_letter_topic,
    }
    return entry


def subscription(
    name: str, trigger: TriggerBinding, *, route: str = EVENTS_ROUTE, scopes: Iterable[str] = ()
) -> dict[str, Any]:
    """The trigger as a declarative ``Subscription`` (``dapr.io/v2alpha1``)."""
    document: dict[str, Any] = {
        "apiVersion": SUBSCRIPTION_API_VERSION,
        "kind": "Subscription",
        "metadata": {"name": name},
        "spec": subscribe_entry(trigger, route=route),
    }
    if scopes := list(scopes):
        document["scopes"] = scopes
    return document


def _routes(trigger: TriggerBinding, route: str) -> dict[str, Any]:
    match = filter_expression(trigger_filters(trigger))
    if match is None:
        return {"default": route}
    # Dapr dead-letters an event no rule matches unless a default route takes it.
    return {"rules": [{"match": match, "path": route}], "default": SKIP_ROUTE}


def trigger_filters(trigger: TriggerBinding) -> list[Filter]:
    """The trigger's filters: its dialects, and the classic ``filter.attributes`` as exact."""
    filters = list(trigger.filters)
    classic = (trigger.filter or {}).get("attributes")
    if classic:
        filters.append(Filter(exact=classic))
    return filters
