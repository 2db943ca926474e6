"""``cumulo models``: the model registry from the command line.

::

    cumulo models list [NAME]
    cumulo models show NAME VERSION
    cumulo models promote NAME VERSION
    cumulo models rollback NAME

The registry is ``STATE_DIR/models.db``, the same file the ML functions use
(``STATE_DIR`` is ``CUMULO_STATE_DIR``, else ``DIR/.cumulo``). Mistakes (no
such model or version, nothing to roll back to) are one line on stderr and
exit code 1.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cumulo.config import Settings
from cumulo.errors import CumuloError
from cumulo.functions.model_registry import ModelRegistry, ModelVersion

app = typer.Typer(
    help="Registered models: versions, champions, promotion and rollback.", no_args_is_help=True
)

DirOption = Annotated[Path, typer.Option("--dir", "-d", help="Project folder.")]
Name = Annotated[str, typer.Argument(help="Model name.")]
Version = Annotated[int, typer.Argument(help="Model version.", min=1)]
SHOWN_METRICS = 3
STAGE_STYLES = {"champion": "bold green", "candidate": "yellow", "rejected": "red"}


def registry_path(project: Path) -> Path:
    """Where the project's model registry lives."""
    return Settings().state_path(project.resolve()) / "models.db"


@contextmanager
def opened(project: Path, *, must_exist: bool = True) -> Iterator[ModelRegistry]:
    """The registry, with its errors turned into a one-line message and exit code 1."""
    path = registry_path(project)
    try:
        if must_exist and not path.exists():
            raise CumuloError(f"no models registered yet ({path} does not exist)")
        yield ModelRegistry(path)
    except (CumuloError, sqlite3.Error) as e:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise typer.Exit(1) from e


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
    project: DirOption = Path("."),
) -> None:
    """Every version of every model (or of one): stage, key metrics, when created."""
    if not registry_path(project).exists() and name is None:
        Console().print("no models registered yet")
        return
    with opened(project) as registry:
        versions = registry.versions(name)
        if name is not None and not versions:
            raise CumuloError(f"no model named {name!r}")
    if not versions:
        Console().print("no models registered yet")
        return
    table = Table("name", "version", "stage", "metrics", "created")
    for version in versions:
        table.add_row(
            version.name,
            f"v{version.version}",
            _stage(version.stage),
            _metrics(version.metrics, SHOWN_METRICS),
            _when(version.created),
        )
    Console().print(table)


@app.command()
def show(name: Name, version: Version, project: DirOption = Path(".")) -> None:
    """One version: stage, artifact, metrics, params, lineage and the model's promotions."""
    with opened(project) as registry:
        found = registry.get(name, version)
        history = registry.history(name)
    console = Console()
    console.print(f"[bold]{escape(name)}[/bold] v{version}  {_stage(found.stage)}")
    for label, value in _details(found):
        console.print(f"  {label:<9} {escape(value)}", highlight=False)
    console.print("  promotions")
    if not history:
        console.print("    (none)")
    for entry in history:
        mark = "→" if entry["version"] == version else " "
        previous = f"from v{entry['previous']}" if entry["previous"] else "first champion"
        console.print(
            f"  {mark} {_when(entry['at'])}  {entry['why']:<8} v{entry['version']}  ({previous})",
            highlight=False,
        )


@app.command()
def promote(name: Name, version: Version, project: DirOption = Path(".")) -> None:
    """Make a version the champion (the one predict serves)."""
    with opened(project) as registry:
        before = registry.champion_version(name)
        registry.promote(name, version)
    was = f" (was v{before})" if before not in (None, version) else ""
    if before == version:
        was = " (already)"
    Console().print(f"{escape(name)} v{version} is champion{was}", highlight=False)


@app.command()
def rollback(name: Name, project: DirOption = Path(".")) -> None:
    """Return to the champion before the current one."""
    with opened(project) as registry:
        before = registry.champion_version(name)
        champion = registry.rollback(name)
    Console().print(
        f"{escape(name)} rolled back to v{champion.version} (from v{before}); "
        f"v{champion.version} is champion",
        highlight=False,
    )


def _details(version: ModelVersion) -> list[tuple[str, str]]:
    rows = [
        ("artifact", version.artifact),
        ("metrics", _metrics(version.metrics) or "-"),
        ("params", _json(version.params)),
        ("lineage", _json(version.lineage)),
        ("created", _when(version.created)),
        ("updated", _when(version.updated)),
    ]
    if version.note:
        rows.append(("note", version.note))
    return rows


def _metrics(metrics: dict[str, float], limit: int | None = None) -> str:
    shown = list(metrics.items())[:limit]
    text = "  ".join(f"{key}={value:.4g}" for key, value in shown)
    return text + ("  …" if limit is not None and len(metrics) > limit else "")


def _stage(stage: str) -> str:
    style = STAGE_STYLES.get(stage)
    return f"[{style}]{stage}[/{style}]" if style else stage


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True) if value else "-"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
