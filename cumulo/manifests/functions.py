"""A function's cluster objects, by what kind of function it is.

- ``mode: job`` (training): a KEDA ScaledJob, one Job per pending event, that
  runs :data:`JOB_COMMAND` (it takes one event from the trigger's own consumer
  group and settles it on the bus by the trigger's delivery policy, so the Job
  itself is never retried: ``backoffLimit`` 0); ``activeDeadlineSeconds`` from
  ``timeout``, at most
  ``scale.max`` at once, GPUs as ``nvidia.com/gpu`` limits.
- ``mode: service`` with triggers (event consumers): a Deployment with a Dapr
  sidecar (app id: the function's name), a Dapr Subscription per trigger, a
  Resiliency, and a KEDA ScaledObject (``scale.min``..``scale.max`` replicas,
  0 scales from zero; ``cooldownPeriod`` = ``scale.idleTimeout``).
- ``mode: service`` without triggers (HTTP and inference): a Knative Service
  (min/max-scale annotations, ``containerConcurrency`` = ``scale.concurrency``),
  with a canary split when the render options ask for one. It is
  ``cluster-local`` (no external route) unless the spec says ``access: public``:
  in the cluster there is no gateway to check the API token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cumulo.events.bus.names import trigger_group
from cumulo.manifests import dapr, keda
from cumulo.manifests.brokers import Broker
from cumulo.manifests.common import APP_DIR, Context, bus_env, resources
from cumulo.manifests.knative import canary_traffic, knative_service
from cumulo.manifests.rbac import service_account_name
from cumulo.manifests.workloads import (
    DAPR_ANNOTATIONS,
    deployment,
    function_container,
    function_env,
    pod_template,
    worker_args,
)
from cumulo.spec import Function, Trigger

# Run one pending event of the function's triggers to completion, then exit
# (0 done, 75 retry, 1 failed): the in-cluster face of runtimes.worker.job.job_main.
JOB_COMMAND = ["cumulo", "job"]


def function_kind(function: Function, triggers: list[Trigger]) -> str:
    """``job``, ``consumer`` or ``knative`` (see the module docstring)."""
    if function.spec.mode == "job":
        return "job"
    return "consumer" if triggers else "knative"


def render_function(
    ctx: Context, function: Function, triggers: list[Trigger], brokers: Mapping[str, Broker]
) -> list[dict[str, Any]]:
    kind = function_kind(function, triggers)
    if kind == "knative":
        service = knative(ctx, function)
        return [service] if service else []
    usable = [t for t in triggers if t.spec.bus in brokers]
    if kind == "job":
        return [job(ctx, function, usable, brokers)]
    return consumer(ctx, function, usable, brokers)


def knative(ctx: Context, function: Function) -> dict[str, Any] | None:
    """The Knative Service of an HTTP function (``None`` with a problem if it cannot be)."""
    spec, options = function.spec, ctx.options
    plain, secrets = function_env(ctx, function)
    revision = f"{function.name}-{options.revision}" if options.revision else None
    canary = options.canary.get(function.name)
    extra = {"command": worker_args(function), "env": secrets}
    needs = resources(spec.resources.cpu, spec.resources.memory, 0)
    try:
        return knative_service(
            function.name,
            ctx.image(function.name),
            namespace=ctx.namespace,
            env=plain,
            min_scale=spec.scale.min,
            max_scale=spec.scale.max,
            concurrency=spec.scale.concurrency,
            gpu=spec.resources.gpu,
            revision=revision,
            traffic=canary_traffic(revision, canary.previous, canary.percent)
            if canary and revision
            else None,
            labels=ctx.labels("function", function.name),
            container={**extra, **({"resources": needs} if needs else {})},
            service_account=service_account_name(ctx, function),
            cluster_local=spec.access != "public",
        )
    except ValueError as e:
        ctx.problem(f"Function/{function.name}", "", str(e))
        return None


def consumer(
    ctx: Context, function: Function, triggers: list[Trigger], brokers: Mapping[str, Broker]
) -> list[dict[str, Any]]:
    """Deployment + Dapr sidecar, Subscriptions, Resiliency and a ScaledObject."""
    name, scale = function.name, function.spec.scale
    container = function_container(ctx, function, worker_args(function))
    annotations = {**DAPR_ANNOTATIONS, "dapr.io/app-id": name}
    labels = ctx.labels("function", name)
    pod = pod_template(labels, container, service_account_name(ctx, function), annotations)
    scalers = _scalers(function, triggers, brokers, scale.min)
    replicas = scale.min if scalers else max(scale.min, 1)
    objects = [deployment(ctx, name, "function", pod, replicas)]
    objects += [dapr.subscription(ctx, t, brokers[t.spec.bus]) for t in triggers]
    components = {bus: broker.component for bus, broker in brokers.items()}
    policy = dapr.resiliency(ctx, function, triggers, components)
    objects += [policy] if policy else []
    if scalers:
        objects.append(
            keda.scaled_object(ctx, name, scalers, scale.min, scale.max, scale.idle_timeout)
        )
    return objects


def job(
    ctx: Context, function: Function, triggers: list[Trigger], brokers: Mapping[str, Broker]
) -> dict[str, Any]:
    """The ScaledJob of a training function: one Job per pending event."""
    spec = function.spec
    command = [*JOB_COMMAND, "--target", spec.handler, "--source", APP_DIR]
    command += ["--name", function.name, "--dir", APP_DIR]
    container = function_container(ctx, function, command, bus_env(ctx))
    container.pop("ports")
    labels = ctx.labels("function", function.name)
    pod = pod_template(labels, container, service_account_name(ctx, function))
    pod["spec"]["restartPolicy"] = "Never"
    limits = {"max": spec.scale.max, "deadline": max(int(spec.timeout), 1), "retries": 0}
    scalers = _scalers(function, triggers, brokers, 0)
    if not scalers:
        ctx.problem(
            f"Function/{function.name}",
            "spec.triggers",
            "a job function needs a trigger on a redis, kafka or nats bus to be scaled by KEDA",
        )
    return keda.scaled_job(ctx, function.name, pod, scalers, limits)


def _scalers(
    function: Function, triggers: list[Trigger], brokers: Mapping[str, Broker], minimum: int
) -> list[dict[str, Any]]:
    threshold = function.spec.scale.concurrency if function.spec.mode == "service" else 1
    found = []
    for trigger in triggers:
        broker = brokers[trigger.spec.bus]
        if broker.kind == "dapr":
            continue
        if function.spec.mode == "job":  # `cumulo job` reads the trigger's own group
            topic, group = broker.pulled_names(trigger.spec.topic, trigger_group(trigger.name))
        else:  # Dapr's consumer group is the app id
            topic, group = trigger.spec.topic, function.name
        found.append(keda.scaler(broker, topic, group, threshold, minimum))
    return _unique(found)


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two triggers on one topic need one scaler."""
    unique: list[dict[str, Any]] = []
    for item in items:
        if item not in unique:
            unique.append(item)
    return unique
