"""``RenderOptions``: what a project's specs leave to the cluster (namespace, images, bus).

::

    RenderOptions(image_registry="registry.example.com/ml", namespace="ml",
                  bus_url="redis://redis.ml.svc:6379",
                  revision="b42", canary={"predict": Canary("predict-b41", 10)})

Images are named ``<registry>/<project>-<function>:<tag>`` (functions) and
``<registry>/<project>:<tag>`` (the project image that runs sources and cron
ticks); a builder later pins digests. :func:`option_problems` reports every
bad option at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cumulo.errors import Problem

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
REGISTRY = re.compile(r"^[a-z0-9]+([._:-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
CLUSTER_SCHEMES = ("redis", "rediss", "kafka", "nats", "dapr")
WHERE = "options"


@dataclass(frozen=True)
class Canary:
    """Send ``percent`` of a function's traffic to the new revision, the rest to ``previous``."""

    previous: str
    percent: int


@dataclass(frozen=True)
class RenderOptions:
    """How to render a project; ``None`` means "derive it" (see each field)."""

    image_registry: str | None = None
    image_tag: str = "latest"
    namespace: str | None = None  # default: the project name
    project: str | None = None  # default: the project folder's name, as a DNS label
    bus_url: str | None = None  # the default bus's URL when the project declares none
    create_namespace: bool = True
    revision: str | None = None  # names Knative revisions <function>-<revision>
    canary: Mapping[str, Canary] = field(default_factory=dict)
    kubernetes_version: str = "1.30"


def option_problems(options: RenderOptions) -> list[Problem]:
    """Every option a cluster would refuse, as ``options:<field>: message``."""
    checks = [
        (options.namespace, DNS_LABEL, "namespace", "a DNS-1123 label"),
        (options.project, DNS_LABEL, "project", "a DNS-1123 label"),
        (
            options.image_registry,
            REGISTRY,
            "imageRegistry",
            "a registry host (optionally :port and /path), without a scheme",
        ),
        (options.image_tag, TAG, "imageTag", "an image tag"),
        (options.revision, DNS_LABEL, "revision", "a DNS-1123 label"),
    ]
    problems = [
        Problem(WHERE, name, f"{value!r} is not {what}")
        for value, pattern, name, what in checks
        if value is not None and not pattern.match(value)
    ]
    if options.bus_url is not None and options.bus_url.split(":", 1)[0] not in CLUSTER_SCHEMES:
        problems.append(
            Problem(WHERE, "busUrl", f"{options.bus_url!r} is not a cluster bus ({_schemes()})")
        )
    for function, canary in options.canary.items():
        problems += _canary_problems(function, canary, options.revision)
    return problems


def _canary_problems(function: str, canary: Canary, revision: str | None) -> list[Problem]:
    where = f"canary.{function}"
    problems = []
    if not 0 <= canary.percent <= 100:
        problems.append(Problem(WHERE, where, f"percent {canary.percent} is not within 0..100"))
    if revision is None:
        problems.append(Problem(WHERE, where, "a canary needs a revision for the new version"))
    if not DNS_LABEL.match(canary.previous):
        problems.append(Problem(WHERE, where, f"{canary.previous!r} is not a revision name"))
    return problems


def _schemes() -> str:
    return ", ".join(f"{scheme}://" for scheme in CLUSTER_SCHEMES)


def project_label(text: str) -> str:
    """A folder name as a DNS-1123 label: lower-case, runs of other characters as '-'."""
    label = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "cumulo"
