"""Namespace, ServiceAccounts and the least privilege the workloads need.

Every workload runs as the ServiceAccount ``<project>``, which is bound to no
Role and mounts no API token: functions and sources never call the Kubernetes
API. The one exception is Cumulo's own ``deploy`` function
(``cumulo.functions.deploy:deploy``), which rolls out Knative Services: it runs
as ``<project>-deployer``, bound to a Role that may read and write
``services.serving.knative.dev`` in the project's namespace, and nothing else.
"""

from __future__ import annotations

from typing import Any

from cumulo.manifests.common import Context
from cumulo.spec import Function

DEPLOY_HANDLER = "cumulo.functions.deploy:deploy"
RBAC_API = "rbac.authorization.k8s.io/v1"


def namespace(ctx: Context) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ctx.namespace, "labels": ctx.labels("project", ctx.name)},
    }


def service_account_name(ctx: Context, function: Function | None = None) -> str:
    """The ServiceAccount a function (or, ``None``, a source) runs as."""
    if function is not None and function.spec.handler == DEPLOY_HANDLER:
        return f"{ctx.name}-deployer"
    return ctx.name


def service_account(ctx: Context, name: str, token: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": ctx.metadata(name, "project", ctx.name),
        "automountServiceAccountToken": token,
    }


def deployer_role(ctx: Context, name: str) -> list[dict[str, Any]]:
    """The Role and RoleBinding that let ``name`` manage Knative Services here."""
    rule = {
        "apiGroups": ["serving.knative.dev"],
        "resources": ["services"],
        "verbs": ["get", "list", "watch", "create", "update", "patch"],
    }
    role = {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": ctx.metadata(name, "project", ctx.name),
        "rules": [rule],
    }
    binding = {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": ctx.metadata(name, "project", ctx.name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}],
    }
    return [role, binding]


def access_objects(ctx: Context) -> list[dict[str, Any]]:
    """The namespace (if asked for), the ServiceAccounts and the deployer's Role."""
    objects = [namespace(ctx)] if ctx.options.create_namespace else []
    objects.append(service_account(ctx, ctx.name, token=False))
    deployers = {service_account_name(ctx, f) for f in ctx.project.functions.values()}
    for name in sorted(deployers - {ctx.name}):
        objects += [service_account(ctx, name, token=True), *deployer_role(ctx, name)]
    return objects
