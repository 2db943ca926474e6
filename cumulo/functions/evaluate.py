"""``evaluate``: judge a trained candidate against the champion, on the same holdout.

::

    handler: cumulo.functions.evaluate:evaluate   # triggered by dev.cumulo.model.trained
    params: {metric: f1_macro, minImprovement: 0.01}

Both models predict the same rows: ``params.holdout`` (a fixed dataset), else
the holdout ``train`` stored with the candidate. The candidate is promotable
when the model has no champion yet, or when it beats the champion on
``metric`` by at least ``minImprovement`` in the metric's ``direction`` (a tie
keeps the champion). The verdict is ``dev.cumulo.model.evaluated``; a loser is
also marked ``rejected`` in the registry and announced by
``dev.cumulo.model.rejected``. Promoting is left to ``deploy``, which acts on
``promote: true``.

Every param is the spec's: an event cannot lower the bar. The holdout is read
only under the data roots (the project folder, the artifact store,
``params.dataRoots``).

Metrics: ``accuracy`` (the default) and ``f1_macro`` for classification,
``rmse`` (the default), ``mae`` and ``r2`` for regression. ``rmse`` and ``mae``
are minimized, the others maximized, unless ``direction`` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.errors import DatasetError, ModelNotFoundError, PermanentError
from cumulo.events.event import Event
from cumulo.events.lineage import MODEL_EVALUATED, MODEL_REJECTED, Lineage, lineage_event
from cumulo.functions.capabilities import DATA_ROOTS_HELP, hides_platform_paths
from cumulo.functions.context import FunctionContext, as_event, event_data
from cumulo.functions.datasets import Dataset, load_dataset
from cumulo.functions.estimators import (
    METRICS,
    Direction,
    compute_metrics,
    default_metric,
    metric_direction,
)
from cumulo.functions.model_registry import ModelVersion
from cumulo.functions.modelfile import ModelBundle, Task, load_bundle
from cumulo.functions.train import permanent

TOLERANCE = 1e-9  # so that 0.95 - 0.90 counts as an improvement of 0.05


class EvaluateParams(BaseModel):
    """How candidates are judged: the spec's alone (an event cannot lower the bar)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    metric: str | None = Field(default=None, description="Default: accuracy, or rmse.")
    direction: Direction | None = Field(default=None, description="Default: by metric.")
    min_improvement: float = Field(default=0.0, ge=0)
    holdout: str | None = Field(default=None, description="Default: the candidate's holdout.")
    data_roots: list[str] = Field(default=[], description=DATA_ROOTS_HELP)


@dataclass(frozen=True)
class Scored:
    """A model version and its metrics on the holdout."""

    version: int
    metrics: dict[str, float]

    def json(self) -> dict[str, Any]:
        return {"version": self.version, "metrics": self.metrics}


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


@functions_framework.cloud_event  # type: ignore[arg-type]  # Cumulo publishes what it returns
def evaluate(event: Any) -> list[Event]:
    """The function: judge the version a ``model.trained`` event names."""
    return run_evaluation(FunctionContext.current(), event)


@hides_platform_paths
def run_evaluation(ctx: FunctionContext, event: Any) -> list[Event]:
    """Score candidate and champion, record the candidate's metrics, reject a loser."""
    params = ctx.params(EvaluateParams, event)
    candidate = trained_version(ctx, event)
    bundle = load_model(ctx, candidate)
    metric, direction = choose_metric(params, bundle.task)
    holdout = load_holdout(ctx, params.holdout or event_data(event).get("holdout"), params)
    scored = Scored(candidate.version, score(bundle, holdout, f"v{candidate.version}"))
    champion = score_champion(ctx, candidate, holdout)
    if candidate.stage == "champion":  # a redelivered event: judged and promoted already
        verdict = Verdict(True, f"v{candidate.version} is the champion already")
    else:
        verdict = decide(metric, direction, params.min_improvement, scored, champion)
    ctx.models.record_metrics(candidate.name, candidate.version, scored.metrics)
    data = {
        "model": candidate.name,
        "version": candidate.version,
        "artifact": candidate.artifact,
        "holdout": holdout.info.uri,
        "metric": metric,
        "direction": direction,
        "candidate": {"metrics": scored.metrics},
        "champion": champion.json() if champion else None,
        "promote": verdict.promote,
        "reason": verdict.reason,
    }
    return verdict_events(ctx, event, data)


def verdict_events(ctx: FunctionContext, event: Any, data: dict[str, Any]) -> list[Event]:
    """``model.evaluated``, and for a loser ``model.rejected`` (marked so in the registry)."""
    lineage, model = Lineage.of(as_event(event)), data["model"]
    events = [lineage_event(MODEL_EVALUATED, ctx.name, data, lineage, subject=model)]
    if not data["promote"]:
        ctx.models.reject(model, data["version"], data["reason"])
        keys = ("model", "version", "reason", "metric", "candidate", "champion")
        rejected = {key: data[key] for key in keys}
        events.append(lineage_event(MODEL_REJECTED, ctx.name, rejected, lineage, subject=model))
    return events


def trained_version(ctx: FunctionContext, event: Any) -> ModelVersion:
    """The registry's record of the version the event names (``data.model``, ``data.version``)."""
    data = event_data(event)
    model, version = data.get("model"), data.get("version")
    if not isinstance(model, str) or not isinstance(version, int):
        raise PermanentError(
            "evaluate: the event's data needs 'model' (a name) and 'version' (a number)"
        )
    with permanent(ModelNotFoundError):
        found = ctx.models.get(model, version)
    if found.stage == "archived":
        raise PermanentError(
            f"evaluate: {model} v{version} is a former champion (archived); only new versions are judged"
        )
    return found


def choose_metric(params: EvaluateParams, task: Task) -> tuple[str, Direction]:
    """The metric to judge by and its direction; an unknown metric is a permanent error."""
    metric = params.metric or default_metric(task)
    if metric not in METRICS[task]:
        known = ", ".join(METRICS[task])
        raise PermanentError(f"evaluate: unknown {task} metric {metric!r}; known: {known}")
    return metric, params.direction or metric_direction(metric)


def load_model(ctx: FunctionContext, version: ModelVersion) -> ModelBundle:
    try:
        return load_bundle(ctx.fetch(version.artifact).path)
    except TypeError as e:
        raise PermanentError(f"evaluate: {version.name} v{version.version}: {e}") from e


def load_holdout(ctx: FunctionContext, uri: Any, params: EvaluateParams) -> Dataset:
    if not isinstance(uri, str) or not uri:
        raise PermanentError(
            "evaluate: no holdout: the event's data has none and params.holdout is not set"
        )
    with permanent(DatasetError):
        return load_dataset(ctx, uri, params.data_roots)


def score(bundle: ModelBundle, holdout: Dataset, who: str) -> dict[str, float]:
    """``bundle``'s metrics on ``holdout`` (which must have its features and target)."""
    with permanent(DatasetError):
        try:
            x, y = holdout.xy(bundle.features, bundle.target)
        except DatasetError as e:
            raise DatasetError(f"{who} cannot be scored: {e}") from e
    return compute_metrics(bundle.task, y, bundle.predict(x))


def score_champion(
    ctx: FunctionContext, candidate: ModelVersion, holdout: Dataset
) -> Scored | None:
    """The champion's metrics on the same holdout; None when there is none other than the candidate."""
    champion = ctx.models.champion(candidate.name)
    if champion is None or champion.version == candidate.version:
        return None
    bundle = load_model(ctx, champion)
    who = f"the champion v{champion.version}"
    try:
        return Scored(champion.version, score(bundle, holdout, who))
    except PermanentError as e:
        raise PermanentError(f"{e}; judge by hand (cumulo models promote)") from e


def decide(
    metric: str,
    direction: Direction,
    min_improvement: float,
    candidate: Scored,
    champion: Scored | None,
) -> Verdict:
    """Promote when there is no champion, or the candidate is better by at least ``min_improvement``."""
    if champion is None:
        return Verdict(True, f"v{candidate.version} has no champion to beat")
    mine, theirs = candidate.metrics[metric], champion.metrics[metric]
    gain = mine - theirs if direction == "maximize" else theirs - mine
    versus = f"{metric} {mine:.4f} against {theirs:.4f} of the champion v{champion.version}"
    if gain > TOLERANCE and gain >= min_improvement - TOLERANCE:
        return Verdict(True, f"{versus}: better by {gain:.4g}")
    needed = f" by at least {min_improvement:g}" if min_improvement else ""
    return Verdict(False, f"{versus}: not better{needed} ({direction})")
