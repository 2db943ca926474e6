"""Knative Serving objects for HTTP and inference functions, as plain dicts.

::

    knative_service("predict", "registry/predict@sha256:…", namespace="ml",
                    env={"CUMULO_PARAMS": '{"model": "iris", "version": 3}'},
                    min_scale=1, max_scale=5, concurrency=8,
                    revision="predict-v3",
                    traffic=canary_traffic("predict-v3", "predict-v2", 10))

Pure functions: nothing here talks to a cluster. The objects validate against
the ``serving.knative.dev/v1`` Service CRD (see :mod:`cumulo.manifests.schemas`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

API_VERSION = "serving.knative.dev/v1"
MIN_SCALE = "autoscaling.knative.dev/min-scale"
MAX_SCALE = "autoscaling.knative.dev/max-scale"
VISIBILITY = "networking.knative.dev/visibility"
CLUSTER_LOCAL = {VISIBILITY: "cluster-local"}  # no route through the external gateway
GPU_RESOURCE = "nvidia.com/gpu"
MANAGED_BY = {"app.kubernetes.io/managed-by": "cumulo"}
CANDIDATE_TAG = "candidate"
CURRENT_TAG = "current"
CONTAINER_NAME = "function"
# A DNS-1035 label: what Knative accepts as a Service or Revision name.
NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def knative_service(
    name: str,
    image: str,
    *,
    namespace: str = "default",
    env: Mapping[str, str] | None = None,
    min_scale: int = 0,
    max_scale: int | None = None,
    concurrency: int = 0,
    gpu: int = 0,
    revision: str | None = None,
    traffic: list[dict[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    container: Mapping[str, Any] | None = None,
    service_account: str | None = None,
    cluster_local: bool = False,
) -> dict[str, Any]:
    """A Knative ``Service`` running ``image``.

    ``concurrency`` is ``containerConcurrency`` (0: unlimited); ``max_scale``
    ``None`` leaves the cluster's default; ``revision`` names the revision the
    template creates (it must start with ``name-``); ``traffic`` is the route,
    e.g. :func:`canary_traffic` (default: all to the latest revision).
    ``container`` adds fields to the container (lists such as ``env`` are
    extended, ``resources`` merged); ``service_account`` runs the pods as it.
    ``cluster_local`` labels the Service ``networking.knative.dev/visibility:
    cluster-local``: reachable inside the cluster only.
    """
    check_name(name, "service name")
    _check_scale(min_scale, max_scale, concurrency, gpu)
    if revision is not None and not revision.startswith(f"{name}-"):
        raise ValueError(f"revision {revision!r} must start with the service name {name + '-'!r}")
    service: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, **(labels or {}), **(CLUSTER_LOCAL if cluster_local else {})},
        },
        "spec": {
            "template": _template(
                image, env or {}, min_scale, max_scale, concurrency, gpu, revision, labels or {}
            )
        },
    }
    if traffic is not None:
        service["spec"]["traffic"] = traffic
    pod = service["spec"]["template"]["spec"]
    _extend_container(pod["containers"][0], container or {})
    if service_account is not None:
        pod["serviceAccountName"] = service_account
    return service


def _extend_container(container: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, list):
            container[key] = [*container.get(key, []), *value]
        elif isinstance(value, Mapping):
            merged = dict(container.get(key, {}))
            for part, inner in value.items():
                nested = isinstance(inner, Mapping)
                merged[part] = {**merged.get(part, {}), **inner} if nested else inner
            container[key] = merged
        else:
            container[key] = value


def canary_traffic(
    new_revision: str, previous_revision: str | None, percent: int
) -> list[dict[str, Any]]:
    """The route for a canary: ``percent`` to the new revision, the rest to the previous one.

    Both are tagged (``candidate``, ``current``) so each has its own URL. With
    ``percent`` 0 or no previous revision, all traffic goes to the latest revision.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"canary percent must be between 0 and 100, not {percent}")
    if percent == 0 or previous_revision is None:
        return [{"latestRevision": True, "percent": 100}]
    check_name(new_revision, "revision name")
    check_name(previous_revision, "revision name")
    return [
        _target(new_revision, percent, CANDIDATE_TAG),
        _target(previous_revision, 100 - percent, CURRENT_TAG),
    ]


def check_name(name: str, what: str) -> None:
    """Refuse a name Kubernetes would (lower-case letters, digits and '-', at most 63)."""
    if not NAME_PATTERN.match(name):
        raise ValueError(
            f"{what} {name!r} is not a DNS-1035 label "
            "(lower-case letters, digits and '-', starting with a letter, at most 63)"
        )


def _check_scale(min_scale: int, max_scale: int | None, concurrency: int, gpu: int) -> None:
    if min(min_scale, concurrency, gpu) < 0:
        raise ValueError("min_scale, concurrency and gpu cannot be negative")
    if max_scale is not None and max_scale < max(min_scale, 1):
        raise ValueError(f"max_scale {max_scale} is below min_scale {min_scale} (or below 1)")


def _target(revision: str, percent: int, tag: str) -> dict[str, Any]:
    return {"revisionName": revision, "latestRevision": False, "percent": percent, "tag": tag}


def _template(
    image: str,
    env: Mapping[str, str],
    min_scale: int,
    max_scale: int | None,
    concurrency: int,
    gpu: int,
    revision: str | None,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    annotations = {MIN_SCALE: str(min_scale)}
    if max_scale is not None:
        annotations[MAX_SCALE] = str(max_scale)
    metadata: dict[str, Any] = {"annotations": annotations, "labels": {**MANAGED_BY, **labels}}
    if revision is not None:
        check_name(revision, "revision name")
        metadata["name"] = revision
    return {
        "metadata": metadata,
        "spec": {"containerConcurrency": concurrency, "containers": [_container(image, env, gpu)]},
    }


def _container(image: str, env: Mapping[str, str], gpu: int) -> dict[str, Any]:
    if not image:
        raise ValueError("a Knative service needs an image")
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": image}
    if env:
        container["env"] = [{"name": key, "value": value} for key, value in env.items()]
    if gpu > 0:
        container["resources"] = {"limits": {GPU_RESOURCE: str(gpu)}}
    return container
