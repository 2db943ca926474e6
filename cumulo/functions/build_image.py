"""``build_image``: a Git push becomes the images of the project's functions.

::

    handler: cumulo.functions.build_image:build_image   # triggered by dev.cumulo.git.push
    params: {registry: registry.local:5000, functions: [predict], builder: oci}

The event's data names ``{repository, branch, commit}``. With ``source: clone``
(the default) the repository is cloned at the commit into the state folder;
with ``source: project`` the function's own project folder is built as it is.
Each function gets ``REGISTRY/PROJECT-FUNCTION:COMMIT[:12]`` and one
``dev.cumulo.image.built`` event, ``{function, image, digest, commit, branch,
repository}``, whose lineage carries ``gitCommit`` and ``imageDigest``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Literal

import functions_framework
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.builders.base import BuildOptions
from cumulo.builders.project import BuildRequest, build_functions
from cumulo.errors import BuildError, PermanentError, SpecError
from cumulo.events.event import Event
from cumulo.functions.context import FunctionContext, as_event, data_path, event_data
from cumulo.functions.lineage import IMAGE_BUILT, Lineage, lineage_event


class BuildImageParams(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    registry: str = "127.0.0.1:5000"
    functions: list[str] = Field(default=[], description="Default: every function.")
    builder: str | None = Field(default=None, description="Default: each spec.build.builder.")
    source: Literal["clone", "project"] = "clone"
    clone_url: str | None = Field(default=None, description="Default: data.repository.")
    prefix: str | None = Field(default=None, description="Default: 'PROJECT-'.")
    insecure: bool | None = None
    cache_dir: Path | None = Field(default=None, description="Default: STATE_DIR/build-cache.")


@functions_framework.cloud_event  # type: ignore[arg-type]  # Cumulo publishes what it returns
def build_image(event: Any) -> list[Event]:
    """The function: build what a ``git.push`` event names."""
    return run_build_image(FunctionContext.current(), event)


def run_build_image(ctx: FunctionContext, event: Any) -> list[Event]:
    params = ctx.params(BuildImageParams, event)
    data = event_data(event)
    commit = str(data.get("commit") or "")
    project_dir = checkout(ctx, params, data) if params.source == "clone" else ctx.settings.project_dir
    cache = params.cache_dir or data_path(ctx.settings, "build-cache", ".keep").parent
    request = BuildRequest(
        registry=params.registry,
        builder=params.builder,
        tag=commit[:12] or "latest",
        prefix=params.prefix,
        options=BuildOptions(cache_dir=cache, insecure=params.insecure),
    )
    try:
        results = build_functions(project_dir, params.functions, request)
    except SpecError as e:
        raise PermanentError(f"cannot build {project_dir}: {e}") from e
    lineage = Lineage.of(as_event(event))
    keep = {key: data[key] for key in ("commit", "branch", "repository") if key in data}
    events = []
    for name, result in results:
        built = {"function": name, "image": result.image, "digest": result.digest, **keep}
        trail = lineage.with_(git_commit=commit or None, image_digest=result.digest)
        events.append(lineage_event(IMAGE_BUILT, ctx.name, built, trail, subject=name))
    return events


def checkout(ctx: FunctionContext, params: BuildImageParams, data: dict[str, Any]) -> Path:
    """A clone of the pushed repository at the pushed commit (reused when present)."""
    url = params.clone_url or data.get("repository")
    commit = data.get("commit") or data.get("branch") or "HEAD"
    if not url:
        raise PermanentError("build_image: the event names no repository (data.repository)")
    name = str(url).rstrip("/").rsplit("/", 1)[-1].removesuffix(".git") or "project"
    folder = data_path(ctx.settings, "builds", str(commit)[:40], name)  # named as the repo
    if not (folder / ".git").exists():
        git("clone", "--quiet", "--no-checkout", str(url), str(folder))
    git("-C", str(folder), "checkout", "--quiet", "--force", str(commit))
    return folder


def git(*args: str) -> None:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(f"git {args[0]} failed: {(done.stderr or done.stdout).strip()[-1000:]}")
