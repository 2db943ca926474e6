"""``cumulo deploy``, ``cumulo delete`` and ``cumulo cluster-status``: a project on Kubernetes.

The logic lives in :mod:`cumulo.manifests.apply` and :mod:`cumulo.manifests.status`;
these commands load the project, connect, and print.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cumulo.config import Settings
from cumulo.errors import CumuloError, MissingExtraError, SpecError

console = Console()
errors = Console(stderr=True)
STYLES = {"created": "green", "configured": "yellow", "pruned": "red", "deleted": "red"}

ProjectDir = Annotated[Path, typer.Argument(help="Project folder (or one YAML file).")]
TargetOpt = Annotated[str, typer.Option("--target", help="Where to deploy: kubernetes.")]
Context_ = Annotated[str | None, typer.Option("--context", help="kubeconfig context.")]
Kubeconfig = Annotated[
    Path | None, typer.Option("--kubeconfig", help="Default: $KUBECONFIG, else ~/.kube/config.")
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Ask the server what would change; change nothing.")
]
Namespace = Annotated[str | None, typer.Option(help="Default: the project name.")]
Modules = Annotated[list[str], typer.Option("--module", "-m", help="Extra Python modules to load.")]


def register(app: typer.Typer) -> None:
    """Add the cluster commands to the ``cumulo`` app."""
    app.command()(deploy)
    app.command()(delete)
    app.command("cluster-status")(cluster_status)


@contextmanager
def _reported() -> Iterator[None]:
    """Own errors as ``error: message``; exit 2 (specs, a missing extra) or 1 (everything else)."""
    try:
        yield
    except (SpecError, MissingExtraError) as e:
        errors.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from e
    except CumuloError as e:
        errors.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from e


def _check_target(target: str) -> None:
    if target != "kubernetes":
        errors.print(f"[red]error:[/red] unknown target {target!r} (known: kubernetes)")
        raise typer.Exit(2)


def _with_cluster(kubeconfig: Path | None, context: str | None, work: Callable[[Any], Any]) -> Any:
    from cumulo.manifests.cluster import Cluster

    with Cluster.connect(kubeconfig, context) as cluster:
        return work(cluster)


def deploy(
    project: ProjectDir = Path("."),
    target: TargetOpt = "kubernetes",
    dry_run: DryRun = False,
    context: Context_ = None,
    kubeconfig: Kubeconfig = None,
    image_registry: Annotated[
        str | None, typer.Option(help="Images are <registry>/<project>-<function>:<tag>.")
    ] = None,
    image_tag: Annotated[str, typer.Option()] = "latest",
    namespace: Namespace = None,
    bus_url: Annotated[
        str | None, typer.Option(help="The default bus in the cluster (default: $CUMULO_BUS_URL).")
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="Delete the project's objects it no longer renders.")
    ] = True,
    module: Modules = [],  # noqa: B006
) -> None:
    """Apply a project's objects to a cluster (server-side apply), pruning what it dropped."""
    from cumulo.manifests import apply
    from cumulo.manifests.options import RenderOptions
    from cumulo.manifests.render import render_project
    from cumulo.spec import load_project

    _check_target(target)
    options = RenderOptions(
        image_registry=image_registry,
        image_tag=image_tag,
        namespace=namespace,
        bus_url=bus_url or Settings().bus_url,
    )
    with _reported():
        loaded = load_project(project, modules=module)
        objects = render_project(loaded, options)
        goal = apply.Target.of(loaded, options)
        changes = _with_cluster(
            kubeconfig,
            context,
            lambda c: apply.deploy(c, objects, goal, dry_run=dry_run, prune=prune),
        )
    _print_changes(changes, dry_run)


def delete(
    project: ProjectDir = Path("."),
    target: TargetOpt = "kubernetes",
    dry_run: DryRun = False,
    context: Context_ = None,
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = None,
    keep_namespace: Annotated[bool, typer.Option(help="Leave the Namespace in place.")] = False,
    module: Modules = [],  # noqa: B006
) -> None:
    """Delete every object of a project from a cluster (found by its labels)."""
    from cumulo.manifests import apply
    from cumulo.manifests.options import RenderOptions
    from cumulo.spec import load_project

    _check_target(target)
    with _reported():
        goal = apply.Target.of(
            load_project(project, modules=module), RenderOptions(namespace=namespace)
        )
        changes = _with_cluster(
            kubeconfig,
            context,
            lambda c: apply.delete(c, goal, dry_run=dry_run, keep_namespace=keep_namespace),
        )
    if not changes:
        console.print(f"nothing of {goal.project} in namespace {goal.namespace}")
    _print_changes(changes, dry_run)


def cluster_status(
    project: ProjectDir = Path("."),
    context: Context_ = None,
    kubeconfig: Kubeconfig = None,
    namespace: Namespace = None,
    module: Modules = [],  # noqa: B006
) -> None:
    """Each of a project's objects in the cluster, with the conditions its controller set."""
    from cumulo.manifests.apply import Target
    from cumulo.manifests.options import RenderOptions
    from cumulo.manifests.status import cluster_status as statuses
    from cumulo.spec import load_project

    with _reported():
        goal = Target.of(load_project(project, modules=module), RenderOptions(namespace=namespace))
        found = _with_cluster(kubeconfig, context, lambda c: statuses(c, goal))
    if not found:
        console.print(f"nothing of {goal.project} in namespace {goal.namespace}")
        return
    table = Table("object", "namespace", "conditions")
    for item in found:
        table.add_row(item.ref, item.namespace or "", escape(item.summary))
    console.print(table)


def _print_changes(changes: list[Any], dry_run: bool) -> None:
    for change in changes:
        style = STYLES.get(change.action, "dim")
        console.print(f"[{style}]{escape(str(change))}[/{style}]", highlight=False)
    counts = Counter(change.action for change in changes)
    summary = ", ".join(f"{n} {action}" for action, n in counts.items()) or "nothing to do"
    console.print(f"{summary}{' (dry run: nothing was changed)' if dry_run else ''}")
