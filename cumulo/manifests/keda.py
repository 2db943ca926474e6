"""KEDA objects: ScaledObjects for event consumers, ScaledJobs for training, TriggerAuthentications.

The scaler follows the bus (each reads the backlog of the consumer group Dapr
uses: the function's app id), one per trigger:

=====  ==================  =====================================================
bus    scaler              metadata
=====  ==================  =====================================================
kafka  ``kafka``           bootstrapServers, consumerGroup, topic, lagThreshold
redis  ``redis-streams``   address, stream (the topic), consumerGroup, and
                           ``lagCount`` when scaling from zero (the only mode
                           that wakes a group with no consumers; Redis 7+),
                           else ``pendingEntriesCount``; enableTLS
nats   ``nats-jetstream``  natsServerMonitoringEndpoint (port 8222), account
                           ``$G``, stream, consumer, lagThreshold
=====  ==================  =====================================================

The threshold is the function's ``scale.concurrency`` (events per replica).
A bus with credentials gets a TriggerAuthentication reading the Secret
``cumulo-bus-<bus>`` (kafka: ``sasl: plaintext``, username, password; redis:
username, password). ``dapr://`` buses have no scaler: the consumer runs
``max(scale.min, 1)`` replicas.
"""

from __future__ import annotations

from typing import Any

from cumulo.manifests.brokers import Broker, monitoring_endpoint
from cumulo.manifests.common import Context

API_VERSION = "keda.sh/v1alpha1"


def scaler(
    broker: Broker, topic: str, group: str, threshold: int, min_replicas: int
) -> dict[str, Any]:
    """One KEDA trigger reading the backlog of ``group`` on ``topic``."""
    if broker.kind == "kafka":
        metadata = {
            "bootstrapServers": ",".join(broker.hosts),
            "consumerGroup": group,
            "topic": topic,
            "lagThreshold": str(threshold),
        }
        return _trigger("kafka", metadata, broker)
    if broker.kind == "redis":
        count = "lagCount" if min_replicas == 0 else "pendingEntriesCount"
        metadata = {"address": broker.hosts[0], "stream": topic, "consumerGroup": group}
        metadata |= {count: str(threshold), "enableTLS": str(broker.tls).lower()}
        return _trigger("redis-streams", metadata, broker)
    metadata = {
        "natsServerMonitoringEndpoint": monitoring_endpoint(broker),
        "account": "$G",
        "stream": broker.stream,
        "consumer": group,
        "lagThreshold": str(threshold),
    }
    return _trigger("nats-jetstream", metadata, broker)


def _trigger(kind: str, metadata: dict[str, str], broker: Broker) -> dict[str, Any]:
    trigger: dict[str, Any] = {"type": kind, "metadata": metadata}
    if broker.credentials and broker.kind in ("kafka", "redis"):
        if broker.kind == "kafka":
            metadata["sasl"] = "plaintext"
        trigger["authenticationRef"] = {"name": broker.secret}
    return trigger


def trigger_authentication(ctx: Context, broker: Broker) -> dict[str, Any]:
    """Scaler credentials, referenced from the bus's Secret (never their values)."""
    keys = (["username"] if broker.username is not None else []) + (
        ["password"] if broker.password else []
    )
    refs = [{"parameter": key, "name": broker.secret, "key": key} for key in keys]
    return {
        "apiVersion": API_VERSION,
        "kind": "TriggerAuthentication",
        "metadata": ctx.metadata(broker.secret, "bus", broker.bus),
        "spec": {"secretTargetRef": refs},
    }


def scaled_object(
    ctx: Context,
    name: str,
    triggers: list[dict[str, Any]],
    min_replicas: int,
    max_replicas: int,
    idle: float,
) -> dict[str, Any]:
    """Scale Deployment ``name`` between min and max replicas (0: from zero) on its backlog."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ScaledObject",
        "metadata": ctx.metadata(name, "function", name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "cooldownPeriod": max(int(idle), 1),
            "triggers": triggers,
        },
    }


def scaled_job(
    ctx: Context,
    name: str,
    pod: dict[str, Any],
    triggers: list[dict[str, Any]],
    limits: dict[str, int],
) -> dict[str, Any]:
    """Start one Job per pending event, at most ``limits['max']`` at once.

    ``limits`` holds ``max``, ``deadline`` (activeDeadlineSeconds, from the
    function's timeout) and ``retries`` (the Job's backoffLimit).
    """
    return {
        "apiVersion": API_VERSION,
        "kind": "ScaledJob",
        "metadata": ctx.metadata(name, "function", name),
        "spec": {
            "jobTargetRef": {
                "activeDeadlineSeconds": limits["deadline"],
                "backoffLimit": limits["retries"],
                "template": pod,
            },
            "minReplicaCount": 0,
            "maxReplicaCount": limits["max"],
            "successfulJobsHistoryLimit": 5,
            "failedJobsHistoryLimit": 5,
            "triggers": triggers,
        },
    }
