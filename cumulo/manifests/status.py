"""What the cluster says about a project's objects: their conditions, as the controllers set them.

Knative sets ``Ready`` (and ``ConfigurationsReady``, ``RoutesReady``) on a
Service, KEDA ``Ready``/``Active``/``Fallback`` on its scalers, Kubernetes
``Available``/``Progressing`` on a Deployment. An object no controller has
looked at yet has none, and says so: nothing here is inferred.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cumulo.manifests.apply import Target, managed
from cumulo.manifests.cluster import Cluster

NO_CONDITIONS = "no conditions yet"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str = ""
    message: str = ""

    def __str__(self) -> str:
        why = f" ({self.reason}: {self.message})" if self.reason and self.status != "True" else ""
        return f"{self.type}={self.status}{why}"


@dataclass(frozen=True)
class ObjectStatus:
    """One live object of the project and what its controller reported."""

    kind: str
    name: str
    namespace: str | None
    conditions: tuple[Condition, ...] = ()
    phase: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def summary(self) -> str:
        parts = [f"phase {self.phase}"] if self.phase else []
        parts += [str(c) for c in self.conditions]
        return ", ".join(parts) or NO_CONDITIONS


def cluster_status(cluster: Cluster, target: Target) -> list[ObjectStatus]:
    """Every live object of the project, in apply order, with its conditions."""
    return [object_status(obj) for obj in managed(cluster, target).values()]


def object_status(obj: Mapping[str, Any]) -> ObjectStatus:
    status = obj.get("status") or {}
    conditions = tuple(
        Condition(
            str(c.get("type", "?")),
            str(c.get("status", "Unknown")),
            str(c.get("reason") or ""),
            str(c.get("message") or ""),
        )
        for c in status.get("conditions") or []
    )
    metadata = obj["metadata"]
    return ObjectStatus(
        obj["kind"], metadata["name"], metadata.get("namespace"), conditions, status.get("phase")
    )
