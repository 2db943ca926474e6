"""``cumulo build``: build functions' images and print each image and digest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from cumulo.builders.base import BuildOptions
from cumulo.builders.project import BuildRequest, build_functions


def run_build(
    project_dir: Path,
    functions: Sequence[str],
    *,
    registry: str,
    builder: str | None,
    tag: str,
    base_image: str | None = None,
    insecure: bool | None = None,
    cache_dir: Path | None = None,
    console: Console | None = None,
) -> None:
    """Build and push; raises :class:`~cumulo.errors.CumuloError` on failure."""
    console = console or Console()
    options = BuildOptions(insecure=insecure)
    if cache_dir is not None:
        options = BuildOptions(cache_dir=cache_dir, insecure=insecure)
    request = BuildRequest(
        registry=registry, builder=builder, tag=tag, base_image=base_image, options=options
    )
    label = ", ".join(functions) or "every function"
    with console.status(f"building {label} → {registry} …"):
        results = build_functions(project_dir, functions, request)
    for name, result in results:
        console.print(
            f"[green]built[/green] [cyan]{name}[/cyan] {result.image}\n"
            f"  digest {result.digest}  ({result.seconds:.2f}s, {len(result.pushed)} blobs pushed)"
        )
