"""Dapr objects: a pub/sub Component per bus, a Subscription per trigger, a Resiliency per function.

Component (``dapr.io/v1alpha1``), from the bus URL (see :mod:`.brokers`):

==========  ==================  ==================================================
bus         ``spec.type``       metadata
==========  ==================  ==================================================
redis       pubsub.redis        redisHost, enableTLS; redisUsername/redisPassword
                                from the Secret ``cumulo-bus-<bus>``
kafka       pubsub.kafka        brokers, authType (none, or password: saslUsername
                                and saslPassword from the Secret)
nats        pubsub.jetstream    natsURL, streamName
dapr://c    (none rendered)     the component ``c`` already exists
==========  ==================  ==================================================

No consumer group is set: Dapr uses each app's id (the function's name), which
is what KEDA's scalers are pointed at.

Subscription (``dapr.io/v2alpha1``): pubsubname, topic, ``scopes: [function]``,
the trigger's filters as a CEL rule (``event.type == "x"``, ``startsWith``,
``endsWith``, ``&&``, ``||``, ``!``) routed to the worker's ``/dapr/events``;
events no rule matches are dropped by Dapr. Filters on attributes Dapr's CEL
does not expose (extensions) are widened to ``true``, never narrowed.
``delivery.deadLetterTopic`` becomes ``deadLetterTopic``.

Resiliency (``dapr.io/v1alpha1``), one per function, scoped to it, on each
component it consumes (``targets.components.<bus>.inbound``):

- ``backoffPolicy: exponential`` → retry policy ``exponential``,
  ``maxInterval`` = ``maxBackoff`` (Dapr starts at 500 ms; ``backoffDelay`` is
  not expressible);
- ``backoffPolicy: linear`` → ``constant`` with ``duration`` = ``backoffDelay``
  (Dapr has no linear policy; constant is the closest, never slower);
- ``retries`` → ``maxRetries``; ``delivery.timeout`` (else the function's
  timeout) → a timeout policy; ``maxEventAge`` has no Dapr equivalent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cumulo.events import dapr_objects
from cumulo.events.dapr_objects import EVENTS_ROUTE, Inbound
from cumulo.manifests.brokers import Broker
from cumulo.manifests.common import Context
from cumulo.spec import Function, Trigger


def component(ctx: Context, broker: Broker) -> dict[str, Any]:
    """The pub/sub Component of a bus (not for ``dapr://`` buses)."""
    metadata = ctx.metadata(broker.component, "bus", broker.bus)
    return dapr_objects.component(metadata, broker.kind, _component_metadata(broker))


def _component_metadata(broker: Broker) -> list[dict[str, Any]]:
    if broker.kind == "redis":
        items = [_value("redisHost", broker.hosts[0]), _value("enableTLS", str(broker.tls).lower())]
        return items + _credentials(broker, "redisUsername", "redisPassword")
    if broker.kind == "kafka":
        auth = "password" if broker.credentials else "none"
        items = [_value("brokers", ",".join(broker.hosts)), _value("authType", auth)]
        return items + _credentials(broker, "saslUsername", "saslPassword")
    urls = ",".join(f"nats://{host}" for host in broker.hosts)
    return [_value("natsURL", urls), _value("streamName", broker.stream)]


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _credentials(broker: Broker, user: str, password: str) -> list[dict[str, Any]]:
    items = []
    if broker.username is not None:
        items.append({"name": user, "secretKeyRef": {"name": broker.secret, "key": "username"}})
    if broker.password:
        items.append({"name": password, "secretKeyRef": {"name": broker.secret, "key": "password"}})
    return items


def subscription(ctx: Context, trigger: Trigger, broker: Broker) -> dict[str, Any]:
    """The Subscription delivering a trigger's events to its function's sidecar."""
    spec = trigger.spec
    return dapr_objects.subscription(
        ctx.metadata(trigger.name, "function", spec.function),
        spec,
        pubsub=broker.component,
        route=EVENTS_ROUTE,
        scopes=[spec.function],
    )


def resiliency(
    ctx: Context, function: Function, triggers: list[Trigger], components: Mapping[str, str]
) -> dict[str, Any] | None:
    """Retry and timeout policies for a function's deliveries, per component it consumes.

    ``components`` maps each bus to its Dapr component. Dapr applies one policy
    per app and component, so triggers of one function on one bus must agree.
    """
    inbound: dict[str, Inbound] = {}
    first: dict[str, Trigger] = {}
    for trigger in triggers:
        bus, delivery = trigger.spec.bus, trigger.spec.delivery
        if bus in first:
            _check_same_delivery(ctx, first[bus], trigger)
            continue
        first[bus] = trigger
        timeout = delivery.timeout or function.spec.timeout
        inbound[components[bus]] = Inbound(bus, delivery, timeout)
    if not inbound:
        return None
    metadata = ctx.metadata(function.name, "function", function.name)
    return dapr_objects.resiliency(metadata, inbound, scopes=[function.name])


def _check_same_delivery(ctx: Context, first: Trigger, other: Trigger) -> None:
    if first.spec.delivery != other.spec.delivery:
        ctx.problem(
            f"Trigger/{other.name}",
            "spec.delivery",
            f"differs from trigger {first.name!r} of the same function on bus "
            f"{first.spec.bus!r}; Dapr applies one retry policy per app and pub/sub component",
        )
