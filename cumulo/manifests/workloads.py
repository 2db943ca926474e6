"""Core workload objects: containers, Deployments and Services.

Every function container runs the worker (its HTTP contract is what Knative,
a Dapr sidecar or the local supervisor talk to)::

    cumulo worker --target <handler> --source /app --name <function>
                  [--signature-type http|cloudevent|event|typed] --concurrency <scale.concurrency>
                  --host 0.0.0.0

listening on ``$PORT`` (8080) on every interface of the pod (the worker's own
default is loopback only). Sources run ``cumulo source run <name> --dir /app
--host 0.0.0.0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cumulo.manifests.common import (
    ALL_INTERFACES,
    APP_DIR,
    PORT,
    Context,
    params_env,
    plain_env,
    resources,
    secret_env,
)
from cumulo.spec import Function

CONTAINER = "function"
DAPR_ANNOTATIONS = {
    "dapr.io/enabled": "true",
    "dapr.io/app-port": str(PORT),
    "dapr.io/app-protocol": "http",
}


def worker_args(function: Function) -> list[str]:
    """The worker's command line for a function."""
    spec = function.spec
    args = ["cumulo", "worker", "--target", spec.handler, "--source", APP_DIR]
    args += ["--name", function.name]
    if spec.signature is not None:
        args += ["--signature-type", spec.signature]
    return [*args, "--concurrency", str(spec.scale.concurrency), *ALL_INTERFACES]


def function_env(ctx: Context, function: Function) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A function's plain env (its own, then CUMULO_*) and its Secret references."""
    where = f"Function/{function.name}"
    plain = {**function.spec.env, **params_env(function.name, function.spec.params)}
    refs = [(f"spec.secrets[{i}]", ref) for i, ref in enumerate(function.spec.secrets)]
    return plain, secret_env(ctx, where, refs)


def function_container(
    ctx: Context,
    function: Function,
    command: list[str],
    extra_env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The container of a function's Deployment or Job."""
    plain, secrets = function_env(ctx, function)
    spec = function.spec
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": ctx.image(function.name),
        "command": command,
        "env": plain_env({**plain, "PORT": str(PORT)}) + secrets + (extra_env or []),
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
    }
    needs = resources(spec.resources.cpu, spec.resources.memory, spec.resources.gpu)
    if needs:
        container["resources"] = needs
    return container


def pod_template(
    labels: Mapping[str, str],
    container: dict[str, Any],
    service_account: str,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec = {"serviceAccountName": service_account, "containers": [container]}
    return {"metadata": metadata, "spec": spec}


def deployment(
    ctx: Context, name: str, kind: str, pod: dict[str, Any], replicas: int
) -> dict[str, Any]:
    """A Deployment of ``pod`` (kind: ``function`` or ``source``, for its labels)."""
    selector = ctx.selector(kind, name)
    pod["metadata"]["labels"] = {**ctx.labels(kind, name), **pod["metadata"]["labels"]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": ctx.metadata(name, kind, name),
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector}, "template": pod},
    }


def service(ctx: Context, name: str, kind: str) -> dict[str, Any]:
    """A ClusterIP Service on port 80 in front of a Deployment's port 8080."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": ctx.metadata(name, kind, name),
        "spec": {
            "selector": ctx.selector(kind, name),
            "ports": [{"name": "http", "port": 80, "targetPort": PORT, "protocol": "TCP"}],
        },
    }
