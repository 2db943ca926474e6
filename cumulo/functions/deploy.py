"""Deploy: promote the version evaluation chose, and render its Knative Service.

::

    - name: deploy
      handler: cumulo.functions.deploy:deploy
      triggers: [{filters: [{exact: {type: dev.cumulo.model.evaluated}}]}]
      params: {service: predict, canaryPercent: 10, namespace: ml}

On ``dev.cumulo.model.evaluated`` with ``promote: true`` the version becomes
the registry's champion (embedded ``predict`` switches to it on its next
request) and the Knative Service that serves it in a cluster is written to
``STATE_DIR/deployments/<model>-v<version>.yaml``, for ``kubectl apply`` or
Cumulo's cluster runtime. It answers ``dev.cumulo.model.deployed``.

The revision pins its model version (``CUMULO_PARAMS={"model", "version"}``),
so with ``canaryPercent`` > 0 the new revision (tag ``candidate``) takes that
share and the previous champion's revision (tag ``current``) the rest.

The image is, in order: the lineage's ``imageDigest`` when it is a full
reference (``repo@sha256:…``); a bare digest (``sha256:…``) pinned onto the
repository of ``params.image`` (or of the default); ``params.image``; else
``cumulo/predict:latest``.

Idempotent: a redelivered event promotes nothing twice. If the version is
already champion, the manifest is written again and ``deployed`` answered
again; if it was champion once and has since been replaced (a rollback, a
newer version), the stale event is ignored.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.errors import ModelNotFoundError, PermanentError
from cumulo.events.event import Event
from cumulo.events.lineage import MODEL_DEPLOYED, Lineage, lineage_event
from cumulo.functions.capabilities import EVENT_SETTABLE
from cumulo.functions.context import FunctionContext, as_event, data_path, event_data
from cumulo.functions.model_registry import ModelRegistry
from cumulo.manifests.knative import NAME_PATTERN, canary_traffic, knative_service

log = logging.getLogger("cumulo.functions.deploy")
DEFAULT_IMAGE = "cumulo/predict:latest"


class DeployParams(BaseModel):
    """What is deployed, where and how (the spec's alone); an event may choose the canary share."""

    # Unknown keys are ignored: data.params of a chain's events may carry other steps' params.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    service: str = Field(default="predict", pattern=NAME_PATTERN.pattern, max_length=50)
    image: str | None = None
    canary_percent: int = Field(default=0, ge=0, le=100, json_schema_extra=EVENT_SETTABLE)
    namespace: str = "default"
    min_scale: int = Field(default=0, ge=0)
    max_scale: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=0, ge=0, description="containerConcurrency; 0: no limit.")
    gpu: int = Field(default=0, ge=0)
    env: dict[str, str] = {}


def deploy(event: Event) -> Event | None:
    """The function: deploy what ``model.evaluated`` said to promote."""
    return deploy_evaluated(FunctionContext.current(), as_event(event))


def deploy_evaluated(ctx: FunctionContext, event: Event) -> Event | None:
    """Promote and render (see the module docstring); ``None`` when there is nothing to do."""
    data = event_data(event)
    if data.get("promote") is not True:
        return None
    model, version = _model_version(data)
    params = ctx.params(DeployParams, event)
    try:
        promoted = promote_once(ctx.models, model, version)
    except ModelNotFoundError as e:
        raise PermanentError(f"deploy: {e}") from e
    if promoted is None:
        log.info("model %r v%d was deployed before and since replaced: ignored", model, version)
        return None
    lineage = Lineage.of(event).with_(model=model, model_version=version)
    manifest = render(params, model, version, promoted, lineage.image_digest)
    path = write_manifest(
        data_path(ctx.settings, "deployments", f"{model}-v{version}.yaml"), manifest
    )
    deployed = {
        "model": model,
        "version": version,
        "previous": promoted.previous,
        "manifest": str(path),
        "canaryPercent": params.canary_percent,
        "service": params.service,
        "namespace": params.namespace,
        "image": manifest["spec"]["template"]["spec"]["containers"][0]["image"],
    }
    return lineage_event(MODEL_DEPLOYED, ctx.name or "deploy", deployed, lineage, subject=model)


class Promotion(BaseModel):
    previous: int | None  # the champion the version replaced


def promote_once(registry: ModelRegistry, name: str, version: int) -> Promotion | None:
    """Make ``version`` champion unless it has been already; ``None`` if it was and is no more."""
    if registry.champion_version(name) != version:
        if any(entry["version"] == version for entry in registry.history(name)):
            return None
        registry.promote(name, version)
    return Promotion(previous=_previous(registry, name, version))


def _previous(registry: ModelRegistry, name: str, version: int) -> int | None:
    """The champion ``version`` took over from, at its latest promotion."""
    handovers = [entry for entry in registry.history(name) if entry["version"] == version]
    return handovers[-1]["previous"] if handovers else None


def render(
    params: DeployParams, model: str, version: int, promoted: Promotion, digest: str | None
) -> dict[str, Any]:
    """The Knative Service serving ``version`` (and the previous one, for a canary)."""
    revision = f"{params.service}-v{version}"
    previous = f"{params.service}-v{promoted.previous}" if promoted.previous else None
    env = {
        "CUMULO_FUNCTION": params.service,
        "CUMULO_PARAMS": json.dumps({"model": model, "version": version}),
        **params.env,
    }
    return knative_service(
        params.service,
        resolve_image(params.image, digest),
        namespace=params.namespace,
        env=env,
        min_scale=params.min_scale,
        max_scale=params.max_scale,
        concurrency=params.concurrency,
        gpu=params.gpu,
        revision=revision,
        traffic=canary_traffic(revision, previous, params.canary_percent),
        labels={"cumulo.dev/model": model, "cumulo.dev/model-version": str(version)},
    )


def resolve_image(configured: str | None, digest: str | None) -> str:
    """The image to run (the order is in the module docstring)."""
    if digest and not digest.startswith("sha256:"):
        return digest
    image = configured or DEFAULT_IMAGE
    if digest:
        return f"{repository(image)}@{digest}"
    return image


def repository(image: str) -> str:
    """``registry:5000/team/predict:1.2@sha256:…`` → ``registry:5000/team/predict``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest as YAML, atomically (a reader never sees half of it)."""
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    partial.replace(path)
    return path


def _model_version(data: dict[str, Any]) -> tuple[str, int]:
    model, version = data.get("model"), data.get("version")
    if not isinstance(model, str) or not model:
        raise PermanentError("deploy: the event's data has no 'model' name")
    if isinstance(version, bool) or not isinstance(version, int | str):
        raise PermanentError(f"deploy: the event's data has no model 'version' (got {version!r})")
    try:
        return model, int(version)
    except ValueError as e:
        raise PermanentError(f"deploy: model version {version!r} is not a number") from e
