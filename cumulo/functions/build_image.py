"""``build_image``: a Git push becomes the images of the project's functions.

::

    handler: cumulo.functions.build_image:build_image   # triggered by dev.cumulo.git.push
    params:
      registry: registry.local:5000
      repositories: [https://git.example.com/shop/]      # what data.repository may name
      functions: [predict]

The event's data names ``{repository, branch, commit}``. With ``source: clone``
(the default) the repository is cloned at the commit into the state folder,
but only one the spec names: ``params.cloneUrl`` (always that one) or one
``params.repositories`` allow-lists (see :mod:`.clones`); with neither, every
clone is refused. With ``source: project`` the function's own project folder
is built as it is. Nothing of a clone is imported or run here: its functions
come from its YAML files, and its build stays inside it (:mod:`.clone_plans`).
An event's ``data.params`` may choose ``functions`` only.

Each function gets ``REGISTRY/PROJECT-FUNCTION:COMMIT[:12]`` and one
``dev.cumulo.image.built`` event, ``{function, image, digest, commit, branch,
repository}``, whose lineage carries ``gitCommit`` and ``imageDigest``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Literal

import functions_framework
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.builders.base import BuildOptions
from cumulo.builders.project import BuildRequest, build_functions
from cumulo.errors import PermanentError, SpecError
from cumulo.events.event import Event
from cumulo.events.lineage import IMAGE_BUILT, Lineage, lineage_event
from cumulo.functions.capabilities import EVENT_SETTABLE, hides_platform_paths
from cumulo.functions.clone_plans import clone_planner
from cumulo.functions.clones import checked_ref, clone_at, clone_url, folder_name
from cumulo.functions.context import FunctionContext, as_event, data_path, event_data


class BuildImageParams(BaseModel):
    """What may be cloned and where images go (the spec's alone); which functions (an event's)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    registry: str = "127.0.0.1:5000"
    functions: list[str] = Field(
        default=[], description="Default: every function.", json_schema_extra=EVENT_SETTABLE
    )
    builder: str | None = Field(default=None, description="Default: each spec.build.builder.")
    source: Literal["clone", "project"] = "clone"
    clone_url: str | None = Field(
        default=None, description="Clone this repository, whatever data.repository says."
    )
    repositories: list[str] = Field(
        default=[],
        description="What data.repository may name: URLs or paths, or prefixes ending in '/'.",
    )
    base_registries: list[str] = Field(
        default=[], description="Where a clone's base image may come from, besides Docker Hub "
        "and params.registry.",
    )  # fmt: skip
    prefix: str | None = Field(default=None, description="Default: 'PROJECT-'.")
    insecure: bool | None = None
    cache_dir: Path | None = Field(default=None, description="Default: STATE_DIR/build-cache.")


@functions_framework.cloud_event  # type: ignore[arg-type]  # Cumulo publishes what it returns
def build_image(event: Any) -> list[Event]:
    """The function: build what a ``git.push`` event names."""
    return run_build_image(FunctionContext.current(), event)


@hides_platform_paths
def run_build_image(ctx: FunctionContext, event: Any) -> list[Event]:
    params = ctx.params(BuildImageParams, event)
    data = event_data(event)
    commit = checked_ref(data["commit"]) if data.get("commit") else ""
    request = BuildRequest(
        registry=params.registry,
        builder=params.builder,
        tag=commit[:12] or "latest",
        prefix=params.prefix,
        options=BuildOptions(
            cache_dir=params.cache_dir or build_cache(ctx), insecure=params.insecure
        ),
    )
    project_dir = ctx.settings.project_dir
    if params.source == "clone":
        project_dir = checkout(ctx, params, data)
        planner = clone_planner(project_dir, [params.registry, *params.base_registries])
        request = dataclasses.replace(request, import_modules=False, planner=planner)
    try:
        results = build_functions(project_dir, params.functions, request)
    except SpecError as e:
        raise PermanentError(f"cannot build the {params.source}: {e}") from e
    lineage = Lineage.of(as_event(event))
    keep: dict[str, Any] = {k: data[k] for k in ("commit", "branch", "repository") if k in data}
    events = []
    for name, result in results:
        built: dict[str, Any] = {
            "function": name,
            "image": result.image,
            "digest": result.digest,
            **keep,
        }
        trail = lineage.with_(git_commit=commit or None, image_digest=result.digest)
        events.append(lineage_event(IMAGE_BUILT, ctx.name, built, trail, subject=name))
    return events


def build_cache(ctx: FunctionContext) -> Path:
    return data_path(ctx.settings, "build-cache", ".keep").parent


def checkout(ctx: FunctionContext, params: BuildImageParams, data: dict[str, Any]) -> Path:
    """A clone of the pushed repository at the pushed commit (reused when present).

    Only a repository the spec allows (:func:`~.clones.clone_url`); the folder is
    named as the repository, under one per URL and commit.
    """
    url = clone_url(params.clone_url, params.repositories, data.get("repository"))
    ref = checked_ref(data.get("commit") or data.get("branch") or "HEAD")
    per_url = hashlib.sha256(url.encode()).hexdigest()[:12]
    folder = data_path(ctx.settings, "builds", per_url, ref[:40], folder_name(url))
    clone_at(url, ref, folder)
    return folder
