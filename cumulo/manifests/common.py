"""What every rendered object shares: labels, metadata, images, env and secrets.

Labels (what ``cumulo deploy`` prunes by)::

    app.kubernetes.io/managed-by: cumulo
    app.kubernetes.io/part-of: <project>
    cumulo.dev/function | cumulo.dev/source | cumulo.dev/bus: <name>

A secret is only ever a reference: an env var ``valueFrom.secretKeyRef``
naming the Kubernetes Secret ``ref.name`` and key ``ref.key`` (default: the
Secret's name). Its value never appears in a manifest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cumulo.errors import Problem
from cumulo.manifests.options import RenderOptions, project_label
from cumulo.spec import Project, SecretRef

MANAGED_BY = "app.kubernetes.io/managed-by"
PART_OF = "app.kubernetes.io/part-of"
KIND_LABELS = {
    "function": "cumulo.dev/function",
    "source": "cumulo.dev/source",
    "bus": "cumulo.dev/bus",
}
APP_DIR = "/app"
PORT = 8080
ALL_INTERFACES = ["--host", "0.0.0.0"]  # a server in a pod listens on all of the pod's interfaces
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


@dataclass
class Context:
    """One rendering: the project, its options, and the problems found so far."""

    project: Project
    options: RenderOptions
    problems: list[Problem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.options.project or project_label(self.project.root.resolve().name)

    @property
    def namespace(self) -> str:
        return self.options.namespace or self.name

    def problem(self, where: str, path: str, message: str) -> None:
        self.problems.append(Problem(where, path, message))

    def labels(self, kind: str, name: str) -> dict[str, str]:
        """The common labels plus ``cumulo.dev/<kind>: name`` (kind: function, source, bus)."""
        labels = {MANAGED_BY: "cumulo", PART_OF: self.name}
        if kind in KIND_LABELS:
            labels[KIND_LABELS[kind]] = name
        return labels

    def selector(self, kind: str, name: str) -> dict[str, str]:
        """The labels a Deployment selects its pods by (stable across renders)."""
        return {PART_OF: self.name, KIND_LABELS[kind]: name}

    def metadata(
        self, name: str, kind: str, owner: str, annotations: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": self.labels(kind, owner),
        }
        if annotations:
            metadata["annotations"] = dict(annotations)
        return metadata

    def image(self, function: str | None = None) -> str:
        """A function's image, or (``None``) the project image that runs sources."""
        repository = f"{self.name}-{function}" if function else self.name
        registry = self.options.image_registry
        prefix = f"{registry.rstrip('/')}/" if registry else ""
        return f"{prefix}{repository}:{self.options.image_tag}"


def plain_env(values: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"name": key, "value": str(value)} for key, value in values.items()]


def params_env(function: str, params: Mapping[str, Any]) -> dict[str, str]:
    """``CUMULO_FUNCTION`` and ``CUMULO_PARAMS`` (the function's params as JSON)."""
    env = {"CUMULO_FUNCTION": function, "CUMULO_PROJECT_DIR": APP_DIR}
    if params:
        env["CUMULO_PARAMS"] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return env


def secret_env(
    ctx: Context, where: str, refs: Iterable[tuple[str, SecretRef]]
) -> list[dict[str, Any]]:
    """Env vars read from Secrets (``valueFrom.secretKeyRef``), checking each reference."""
    env = []
    for path, ref in refs:
        key = ref.key or ref.name
        if not SECRET_NAME.match(ref.name):
            ctx.problem(where, path, f"secret name {ref.name!r} is not a Kubernetes Secret name")
        if not SECRET_KEY.match(key):
            ctx.problem(where, path, f"secret key {key!r} is not a Kubernetes Secret key")
        selector = {"name": ref.name, "key": key}
        env.append({"name": ref.variable, "valueFrom": {"secretKeyRef": selector}})
    return env


def bus_env(ctx: Context) -> list[dict[str, Any]]:
    """``CUMULO_BUS_URL`` for processes that open the bus themselves (sources, cron, jobs)."""
    url = ctx.options.bus_url
    return [{"name": "CUMULO_BUS_URL", "value": url}] if url else []


def resources(cpu: str | None, memory: str | None, gpu: int) -> dict[str, Any]:
    """Requests for cpu/memory, a limit for memory and ``nvidia.com/gpu``."""
    requests = {k: v for k, v in {"cpu": cpu, "memory": memory}.items() if v}
    limits: dict[str, str] = {"memory": memory} if memory else {}
    if gpu:
        limits["nvidia.com/gpu"] = str(gpu)
    return {k: v for k, v in {"requests": requests, "limits": limits}.items() if v}
