"""Event sources in the cluster: a CronJob per cron source, a Deployment for the others.

A cron source becomes a ``batch/v1`` CronJob (``schedule``, ``timeZone``,
``concurrencyPolicy: Forbid``) whose pod publishes one tick::

    cumulo publish <type> --data <json> --source /cumulo/sources/<name>
                   --topic <sink.topic> --dir /app

Missed ticks: ``fire-once`` is the CronJob's own behaviour (the latest missed
tick runs once); ``skip`` sets ``startingDeadlineSeconds`` to
:data:`SKIP_DEADLINE`, so a tick more than that late is skipped; ``fire-all``
cannot be expressed (a problem). ``cumulo publish`` writes to the default bus,
so a cron sink on another bus is a problem too.

Every other source runs ``cumulo source run <name> --dir /app --host 0.0.0.0``
in a one-replica Deployment; webhook-style sources (git with a provider other than
``poll``, webhook, s3 ``notification``) also get a Service (port 80 → 8080,
``POST /sources/<name>``). Their secrets are Secret references.
"""

from __future__ import annotations

import json
from typing import Any

from cumulo.events.sources import source_uri
from cumulo.events.sources.cron import DEFAULT_TYPE as DEFAULT_CRON_TYPE
from cumulo.manifests.common import (
    ALL_INTERFACES,
    APP_DIR,
    Context,
    bus_env,
    plain_env,
    secret_env,
)
from cumulo.manifests.rbac import service_account_name
from cumulo.manifests.workloads import deployment, pod_template, service
from cumulo.spec import EventSource, SecretRef

SKIP_DEADLINE = 60
CONTAINER = "source"


def render_source(ctx: Context, source: EventSource) -> list[dict[str, Any]]:
    """The objects of one event source."""
    if source.spec.cron is not None:
        job = cron_job(ctx, source)
        return [job] if job else []
    command = ["cumulo", "source", "run", source.name, "--dir", APP_DIR, *ALL_INTERFACES]
    container = _container(ctx, source, command)
    labels = ctx.labels("source", source.name)
    pod = pod_template(labels, container, service_account_name(ctx))
    objects = [deployment(ctx, source.name, "source", pod, replicas=1)]
    if is_webhook(source):
        objects.append(service(ctx, source.name, "source"))
    return objects


def is_webhook(source: EventSource) -> bool:
    """Whether a source receives HTTP deliveries (and so needs a Service)."""
    spec = source.spec
    return bool(
        spec.webhook
        or (spec.git and spec.git.provider != "poll")
        or (spec.s3 and spec.s3.mode == "notification")
    )


def cron_job(ctx: Context, source: EventSource) -> dict[str, Any] | None:
    cron, sink = source.spec.cron, source.spec.sink
    assert cron is not None
    if not _cron_ok(ctx, source):
        return None
    command = ["cumulo", "publish", source.spec.type or DEFAULT_CRON_TYPE]
    command += ["--data", json.dumps(cron.data), "--source", source_uri(source.name)]
    command += ["--topic", sink.topic, "--dir", APP_DIR]
    container = _container(ctx, source, command)
    pod = pod_template(ctx.labels("source", source.name), container, service_account_name(ctx))
    pod["spec"]["restartPolicy"] = "OnFailure"
    spec: dict[str, Any] = {
        "schedule": cron.schedule,
        "timeZone": cron.timezone,
        "concurrencyPolicy": "Forbid",
        "jobTemplate": {"spec": {"backoffLimit": 3, "template": pod}},
    }
    if cron.missed == "skip":
        spec["startingDeadlineSeconds"] = SKIP_DEADLINE
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": ctx.metadata(source.name, "source", source.name),
        "spec": spec,
    }


def _cron_ok(ctx: Context, source: EventSource) -> bool:
    cron, where = source.spec.cron, f"EventSource/{source.name}"
    assert cron is not None
    before = len(ctx.problems)
    if cron.missed == "fire-all":
        ctx.problem(
            where,
            "spec.cron.missed",
            "a CronJob cannot fire every missed tick: use fire-once or skip",
        )
    if len(cron.schedule.split()) != 5:
        ctx.problem(where, "spec.cron.schedule", "a CronJob schedule has five fields (no seconds)")
    if source.spec.sink.bus != "default":
        ctx.problem(
            where,
            "spec.sink.bus",
            "a cron tick is published with `cumulo publish`, to the default bus only",
        )
    return len(ctx.problems) == before


def _container(ctx: Context, source: EventSource, command: list[str]) -> dict[str, Any]:
    refs = list(source_secrets(source))
    env = plain_env({"CUMULO_PROJECT_DIR": APP_DIR}) + bus_env(ctx)
    env += secret_env(ctx, f"EventSource/{source.name}", refs)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": ctx.image(),
        "command": command,
        "env": env,
    }
    if is_webhook(source):
        container["ports"] = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    return container


def source_secrets(source: EventSource) -> list[tuple[str, SecretRef]]:
    """Every secret reference a source spec holds, with its path."""
    spec = source.spec
    kind = spec.kind
    body = getattr(spec, kind)
    found = []
    for field in ("secret", "token", "access_key", "secret_key"):
        ref = getattr(body, field, None)
        if isinstance(ref, SecretRef):
            found.append((f"spec.{kind}.{field}", ref))
    return found
