"""Dapr objects for a self-hosted sidecar: pub/sub Component, Resiliency, subscriptions.

Pure functions returning dicts in Dapr's CRD shapes (``dapr.io``), for a
sidecar's ``--resources-path`` and for the worker's ``GET /dapr/subscribe``.
The documents are built by the one Dapr renderer the cluster uses too
(:mod:`cumulo.events.dapr_objects`), so self-hosted and cluster Dapr behave
alike; what differs here is that nothing needs a Kubernetes Secret or a
rendering context:

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
from cumulo.events import dapr_objects
from cumulo.events.dapr_objects import EVENTS_ROUTE, Inbound, trigger_filters
from cumulo.events.dapr_rules import filter_expression, retry_policy
from cumulo.spec.models import TriggerBinding

__all__ = [
    "component",
    "filter_expression",
    "resiliency",
    "retry_policy",
    "subscribe_entry",
    "subscription",
    "trigger_filters",
]

BROKER_KINDS = {"redis": "redis", "rediss": "redis", "nats": "nats", "kafka": "kafka"}


def _metadata(**values: str) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in values.items() if value]


def component(name: str, broker_url: str, *, scopes: Iterable[str] = ()) -> dict[str, Any]:
    """The ``pubsub.*`` Component named ``name`` over the broker at ``broker_url``."""
    parts = urlsplit(broker_url)
    kind = BROKER_KINDS.get(parts.scheme)
    if kind == "redis":
        items = _redis_metadata(parts)
    elif kind == "nats":
        items = _metadata(natsURL=f"nats://{parts.hostname}:{parts.port or 4222}")
    elif kind == "kafka":
        items = _metadata(brokers=parts.netloc, authType="none")
    else:
        raise SpecError(
            [Problem("dapr component", name, f"no Dapr pub/sub for {parts.scheme!r} URLs")]
        )
    return dapr_objects.component({"name": name}, kind, items, scopes=scopes)


def _redis_metadata(parts: Any) -> list[dict[str, Any]]:
    db = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return _metadata(
        redisHost=f"{parts.hostname or 'localhost'}:{parts.port or 6379}",
        redisPassword=parts.password or "",
        redisDB=db,
        enableTLS="true" if parts.scheme == "rediss" else "",
    )


def resiliency(
    name: str, triggers: Iterable[TriggerBinding], *, scopes: Iterable[str] = ()
) -> dict[str, Any]:
    """One Resiliency with an inbound policy per pub/sub component the triggers use.

    Dapr attaches inbound policies to a component, not to a subscription: the
    triggers on one component must agree (:class:`SpecError` naming each that does not)."""
    inbound: dict[str, Inbound] = {}
    problems: list[Problem] = []
    for index, trigger in enumerate(triggers):
        delivery = trigger.delivery
        chosen = inbound.setdefault(trigger.bus, Inbound(trigger.bus, delivery, delivery.timeout))
        if (retry_policy(chosen.delivery), chosen.timeout) != (
            retry_policy(delivery),
            delivery.timeout,
        ):
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
    return dapr_objects.resiliency({"name": name}, inbound, scopes=scopes)


def subscribe_entry(trigger: TriggerBinding, *, route: str = EVENTS_ROUTE) -> dict[str, Any]:
    """The trigger as one entry of the worker's ``GET /dapr/subscribe`` answer."""
    return dapr_objects.subscription_spec(trigger, trigger.bus, route)


def subscription(
    name: str, trigger: TriggerBinding, *, route: str = EVENTS_ROUTE, scopes: Iterable[str] = ()
) -> dict[str, Any]:
    """The trigger as a declarative ``Subscription`` (``dapr.io/v2alpha1``)."""
    return dapr_objects.subscription(
        {"name": name}, trigger, pubsub=trigger.bus, route=route, scopes=scopes
    )
