"""Apply a rendered project to a cluster, prune what it no longer renders, delete it, show it.

::

    with Cluster.connect(kubeconfig) as cluster:
        target = Target.of(project, options)
        for change in deploy(cluster, render_project(project, options), target):
            print(change)            # created Deployment/evaluate ...

Every object goes through server-side apply (field manager ``cumulo``, conflicts
forced), so deploying the same project twice changes nothing. Objects labelled
``app.kubernetes.io/managed-by: cumulo`` and ``app.kubernetes.io/part-of:
<project>`` in the project's namespace that the project no longer renders are
pruned (Namespaces never are; ``cumulo delete`` removes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cumulo.errors import ClusterRequestError
from cumulo.manifests.cluster import Cluster, Resource
from cumulo.manifests.common import MANAGED_BY, PART_OF, Context
from cumulo.manifests.options import RenderOptions
from cumulo.spec import Project

# Every namespaced kind Cumulo renders: what prune, delete and status look at.
KINDS = (
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("dapr.io/v1alpha1", "Component"),
    ("dapr.io/v1alpha1", "Resiliency"),
    ("dapr.io/v2alpha1", "Subscription"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "ScaledJob"),
    ("serving.knative.dev/v1", "Service"),
)
NAMESPACE = ("v1", "Namespace")
VOLATILE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")

Key = tuple[str, str, str, str]  # group, kind, namespace, name


@dataclass(frozen=True)
class Target:
    """Which objects are a project's: its name (the part-of label) and its namespace."""

    project: str
    namespace: str

    @classmethod
    def of(cls, project: Project, options: RenderOptions | None = None) -> Target:
        ctx = Context(project, options or RenderOptions())
        return cls(ctx.name, ctx.namespace)

    @property
    def selector(self) -> str:
        return f"{MANAGED_BY}=cumulo,{PART_OF}={self.project}"


@dataclass(frozen=True)
class Change:
    """What happened (or, in a dry run, would happen) to one object."""

    action: str  # created, configured, unchanged, pruned, deleted
    kind: str
    name: str
    namespace: str | None = None
    note: str = ""

    def __str__(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        note = f" ({self.note})" if self.note else ""
        return f"{self.action} {self.kind}/{self.name}{where}{note}"


def deploy(
    cluster: Cluster,
    objects: Iterable[Mapping[str, Any]],
    target: Target,
    *,
    dry_run: bool = False,
    prune: bool = True,
) -> list[Change]:
    """Apply every object in order, then prune the project's objects not among them."""
    objects = list(objects)
    live = managed(cluster, target)
    changes = [_apply(cluster, obj, live, dry_run) for obj in objects]
    if prune:
        wanted = {_key(obj, obj["metadata"].get("namespace")) for obj in objects}
        for key, obj in live.items():
            if key not in wanted and obj["kind"] != "Namespace":
                changes.append(_remove(cluster, obj, "pruned", dry_run))
    return changes


def delete(
    cluster: Cluster, target: Target, *, dry_run: bool = False, keep_namespace: bool = False
) -> list[Change]:
    """Delete every object of the project, its Namespace last (unless ``keep_namespace``)."""
    live = list(managed(cluster, target).values())
    ordered = [o for o in live if o["kind"] != "Namespace"][::-1]
    if not keep_namespace:
        ordered += [o for o in live if o["kind"] == "Namespace"]
    return [_remove(cluster, obj, "deleted", dry_run) for obj in ordered]


def managed(cluster: Cluster, target: Target) -> dict[Key, dict[str, Any]]:
    """The project's live objects (by its labels), in :data:`KINDS` order, Namespace first."""
    found: dict[Key, dict[str, Any]] = {}
    for resource in _resources(cluster):
        namespace = target.namespace if resource.namespaced else None
        for obj in cluster.list(resource, namespace, target.selector):
            found[_key(obj, namespace)] = obj
    return found


def _resources(cluster: Cluster) -> list[Resource]:
    """The kinds of :data:`KINDS` (and Namespace) that this cluster serves."""
    served = []
    for api_version, kind in (NAMESPACE, *KINDS):
        resource = cluster.served(api_version).get(kind)
        if resource is not None:
            served.append(resource)
    return served


def _apply(
    cluster: Cluster, obj: Mapping[str, Any], live: Mapping[Key, dict[str, Any]], dry_run: bool
) -> Change:
    resource = cluster.resource(obj["apiVersion"], obj["kind"])
    name = obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace") if resource.namespaced else None
    before = live.get(_key(obj, namespace)) or cluster.get(resource, namespace, name)
    try:
        after = cluster.apply(resource, obj, dry_run=dry_run)
    except ClusterRequestError as e:
        if dry_run and e.status == 404 and before is None:
            # The namespace is created by this deploy, so the server cannot check it yet.
            note = "namespace is new: not checked by the server"
            return Change("created", resource.kind, name, namespace, note)
        raise
    return Change(_action(before, after), resource.kind, name, namespace)


def _action(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    if before is None:
        return "created"
    version = before["metadata"].get("resourceVersion")
    if version != after["metadata"].get("resourceVersion") or _content(before) != _content(after):
        return "configured"
    return "unchanged"


def _content(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object less what the server changes on every write (for dry-run comparisons)."""
    metadata = {k: v for k, v in obj["metadata"].items() if k not in VOLATILE}
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    return {"metadata": metadata, **rest}


def _remove(cluster: Cluster, obj: Mapping[str, Any], action: str, dry_run: bool) -> Change:
    resource = cluster.resource(obj["apiVersion"], obj["kind"])
    name = obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace") if resource.namespaced else None
    cluster.delete(resource, namespace, name, dry_run=dry_run)
    return Change(action, resource.kind, name, namespace)


def _key(obj: Mapping[str, Any], namespace: str | None) -> Key:
    group = obj["apiVersion"].rpartition("/")[0]
    return (group, obj["kind"], namespace or "", obj["metadata"]["name"])
