"""``render_project``: a whole project as Kubernetes objects, in apply order.

::

    objects = render_project(load_project("examples/ml-pipeline"),
                             RenderOptions(image_registry="registry.local:5000",
                                           bus_url="redis://redis:6379"))
    print(to_yaml(objects))

Order: Namespace, ServiceAccounts and RBAC; per bus its Dapr Component and
KEDA TriggerAuthentication; per function its workload objects; per source its
CronJob or Deployment (and Service). Everything that cannot be rendered is
collected and raised at once as :class:`~cumulo.errors.ManifestError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from cumulo.errors import ManifestError
from cumulo.manifests import dapr, keda
from cumulo.manifests.brokers import Broker, broker
from cumulo.manifests.common import Context
from cumulo.manifests.functions import function_kind, render_function
from cumulo.manifests.options import RenderOptions, option_problems
from cumulo.manifests.rbac import access_objects
from cumulo.manifests.sources import render_source
from cumulo.spec import Project, Trigger


def render_project(project: Project, options: RenderOptions | None = None) -> list[dict[str, Any]]:
    """Every object the project needs in a cluster; :class:`ManifestError` lists what is wrong."""
    options = options or RenderOptions()
    problems = option_problems(options)
    if problems:
        raise ManifestError(problems)
    ctx = Context(project, options)
    triggers = all_triggers(project)
    brokers = bus_brokers(ctx, _buses_used(project, triggers))
    objects = access_objects(ctx) + bus_objects(ctx, brokers.values())
    for function in project.functions.values():
        mine = [t for t in triggers if t.spec.function == function.name]
        objects += render_function(ctx, function, mine, brokers)
    for source in project.sources.values():
        objects += render_source(ctx, source)
    _check_canaries(ctx, triggers)
    if ctx.problems:
        raise ManifestError(ctx.problems)
    return objects


def _check_canaries(ctx: Context, triggers: list[Trigger]) -> None:
    for name in ctx.options.canary:
        function = ctx.project.functions.get(name)
        mine = [t for t in triggers if t.spec.function == name]
        if function is None or function_kind(function, mine) != "knative":
            ctx.problem(
                "options", f"canary.{name}", "a canary needs an HTTP function of the project"
            )


def all_triggers(project: Project) -> list[Trigger]:
    """Standalone and inline triggers, and those implied by sources that sink to a function."""
    implied = project.implied_triggers()
    return [
        *project.triggers.values(),
        *(t for n, t in implied.items() if n not in project.triggers),
    ]


def _buses_used(project: Project, triggers: list[Trigger]) -> dict[str, str]:
    """Each bus something in the cluster uses, and what uses it first."""
    used: dict[str, str] = {}
    for trigger in triggers:
        used.setdefault(trigger.spec.bus, f"Trigger/{trigger.name}")
    for source in project.sources.values():
        used.setdefault(source.spec.sink.bus, f"EventSource/{source.name}")
    return used


def bus_brokers(ctx: Context, used: Mapping[str, str]) -> dict[str, Broker]:
    """The broker of every bus in use; a problem for each that no cluster can reach."""
    brokers = {}
    for name, user in used.items():
        bus = ctx.project.buses.get(name)
        if bus is None:
            ctx.problem(user, "spec.bus", f"no bus named {name!r}")
            continue
        url = bus.spec.url or (ctx.options.bus_url if name == "default" else None)
        if url is None or url.startswith("sqlite"):
            hint = " (or give --bus-url)" if name == "default" else ""
            ctx.problem(
                f"EventBus/{name}",
                "spec.url",
                f"needs a redis, kafka, nats or dapr URL in a cluster{hint}",
            )
            continue
        try:
            brokers[name] = broker(name, url)
        except ValueError as e:
            ctx.problem(f"EventBus/{name}", "spec.url", str(e))
    return brokers


def bus_objects(ctx: Context, brokers: Iterable[Broker]) -> list[dict[str, Any]]:
    """A Dapr Component per bus (not ``dapr://`` ones) and its scalers' TriggerAuthentication."""
    objects = []
    for found in brokers:
        if found.kind == "dapr":
            continue
        if found.kind == "nats" and found.credentials:
            ctx.problem(
                f"EventBus/{found.bus}", "spec.url", "NATS credentials are not supported yet"
            )
        objects.append(dapr.component(ctx, found))
        if found.credentials and found.kind in ("redis", "kafka"):
            objects.append(keda.trigger_authentication(ctx, found))
    return objects


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML, keys in the order rendered."""
    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False, default_flow_style=False)
