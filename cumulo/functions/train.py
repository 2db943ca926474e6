"""``train``: fit a model on a dataset, store it, and register it as a candidate.

::

    handler: cumulo.functions.train:train     # mode: job, triggered by dev.cumulo.dataset.ready
    params: {model: churn, target: churned, estimator: gradient_boosting}

The dataset is ``data.uri`` of the event, else ``params.dataset`` (for a cron
tick: scheduled retraining), read only under the data roots: the project
folder, the artifact store and ``params.dataRoots``
(:mod:`~cumulo.functions.capabilities`). An event's ``data.params`` may choose
how to train (``target``, ``task``, ``estimator``, ``hyperparameters``,
``holdoutFraction``, ``seed``), never the model or the roots. The rows are split (seeded) into a training part
and a holdout; the model is fitted on the first and scored on the second. The
model bundle and the holdout (Parquet) are stored under
``MODEL/RUN/model.joblib`` and ``MODEL/RUN/holdout.parquet``, the version is
registered as a candidate, and ``dev.cumulo.model.trained`` says so.
``dev.cumulo.run.progress`` events follow the run as it goes.

Data the model cannot be trained on, and params that cannot work, are
permanent failures; anything else (a store that is down) is retried.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.extras import from_extra

with from_extra("ml", needed_by=__name__):
    import pandas as pd

from cumulo.errors import DatasetError, MLError, PermanentError
from cumulo.events.event import Event
from cumulo.events.lineage import MODEL_TRAINED, RUN_PROGRESS, Lineage, lineage_event
from cumulo.functions.capabilities import DATA_ROOTS_HELP, EVENT_SETTABLE, hides_platform_paths
from cumulo.functions.context import FunctionContext, as_event, event_data
from cumulo.functions.datasets import Dataset, load_dataset, split, write_parquet, xy
from cumulo.functions.estimators import Progress, Trainer, build_trainer, compute_metrics
from cumulo.functions.modelfile import ModelBundle, Task, feature_profile, save_bundle

STEPS = ("load dataset", "split", "fit", "score holdout", "store artifacts", "register")


class TrainParams(BaseModel):
    """How to train (an event may choose: ``EVENT_SETTABLE``) and what (the spec's alone)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    model: str = Field(min_length=1, description="The model's name in the registry.")
    target: str = Field(default="target", json_schema_extra=EVENT_SETTABLE)
    task: Task = Field(default="classification", json_schema_extra=EVENT_SETTABLE)
    estimator: str = Field(default="random_forest", json_schema_extra=EVENT_SETTABLE)
    hyperparameters: dict[str, Any] = Field(default={}, json_schema_extra=EVENT_SETTABLE)
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1, json_schema_extra=EVENT_SETTABLE)
    seed: int = Field(default=0, json_schema_extra=EVENT_SETTABLE)
    dataset: str | None = Field(default=None, description="Used when the event names none.")
    data_roots: list[str] = Field(default=[], description=DATA_ROOTS_HELP)

    def recorded(self) -> dict[str, Any]:
        """The params a model version records in the registry."""
        return self.model_dump(
            by_alias=True,
            include={"estimator", "hyperparameters", "task", "target", "holdout_fraction", "seed"},
        )


@dataclass
class Prepared:
    """A dataset split for training: the train rows, the holdout rows, the feature names."""

    dataset: Dataset
    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]


class ProgressReporter:
    """Publishes ``dev.cumulo.run.progress`` events as a run goes through its steps."""

    def __init__(
        self, ctx: FunctionContext, run: str, model: str, steps: tuple[str, ...], lineage: Lineage
    ):
        self.ctx, self.run, self.model, self.steps = ctx, run, model, steps
        self.lineage = lineage  # so a watcher can tell which chain a bar belongs to

    def step(self, index: int, message: str, fraction: float = 0.0) -> None:
        """Step ``index`` (from 1) has begun (``fraction`` of it done)."""
        total = len(self.steps)
        data = {
            "run": self.run,
            "function": self.ctx.name,
            "model": self.model,
            "step": index,
            "total": total,
            "stage": self.steps[index - 1],
            "percent": round(100 * (index - 1 + fraction) / total, 1),
            "message": message,
        }
        self.ctx.publish(
            lineage_event(RUN_PROGRESS, self.ctx.name, data, self.lineage, subject=self.model)
        )

    def within(self, index: int) -> Progress:
        """A callback for the progress inside step ``index`` (a trainer's epochs)."""
        return lambda fraction, message: self.step(index, message, fraction)

    def done(self, message: str) -> None:
        self.step(len(self.steps), message, 1.0)


@functions_framework.cloud_event  # type: ignore[arg-type]  # Cumulo publishes what it returns
def train(event: Any) -> Event:
    """The function: train on the dataset the event (or ``params.dataset``) names."""
    return run_training(FunctionContext.current(), event)


@hides_platform_paths
def run_training(ctx: FunctionContext, event: Any) -> Event:
    """Train, store and register one model version; the ``model.trained`` event."""
    params = ctx.params(TrainParams, event)
    uri = dataset_uri(event, params)
    run = ctx.run_id or uuid.uuid4().hex
    started = Lineage.of(as_event(event)).with_(run_id=run, model=params.model)
    progress = ProgressReporter(ctx, run, params.model, STEPS, started)
    with permanent(MLError):
        trainer = build_trainer(
            params.task, params.estimator, params.hyperparameters, seed=params.seed
        )
    prepared = prepare(ctx, uri, params, progress)
    bundle, metrics = fit(trainer, prepared, params, progress)
    progress.step(5, "storing the model and the holdout")
    artifact, holdout = store(ctx, f"{params.model}/{run}", bundle, prepared.holdout)
    progress.step(6, f"registering a version of {params.model}")
    lineage = training_lineage(event, prepared.dataset, run, params.model)
    registered = ctx.models.register(
        params.model, artifact, metrics=metrics, params=params.recorded(), lineage=lineage.dump()
    )
    progress.done(f"{params.model} v{registered.version} trained: {_summary(metrics)}")
    data = {
        "model": params.model,
        "version": registered.version,
        "artifact": artifact,
        "holdout": holdout,
        "metrics": metrics,
        "estimator": params.estimator,
    }
    lineage = lineage.with_(model_version=registered.version)
    return lineage_event(MODEL_TRAINED, ctx.name, data, lineage, subject=params.model)


def dataset_uri(event: Any, params: TrainParams) -> str:
    """``data.uri`` of the event, else ``params.dataset``."""
    uri = event_data(event).get("uri") or params.dataset
    if not isinstance(uri, str) or not uri:
        raise PermanentError(
            "train: no dataset: the event's data has no 'uri' and params.dataset is not set"
        )
    return uri


def prepare(
    ctx: FunctionContext, uri: str, params: TrainParams, progress: ProgressReporter
) -> Prepared:
    """Load and split the dataset; a dataset that cannot be used is a permanent failure."""
    progress.step(1, f"loading {uri}")
    with permanent(DatasetError):
        dataset = load_dataset(ctx, uri, params.data_roots)
        features = dataset.features(params.target)
        progress.step(
            2, f"splitting {dataset.info.rows} rows, {params.holdout_fraction:g} held out"
        )
        train_rows, holdout = split(dataset.frame, params.holdout_fraction, params.seed, uri=uri)
        xy(dataset.frame, features, params.target, uri)  # numeric, complete: say so now
    return Prepared(dataset, train_rows, holdout, features)


def fit(
    trainer: Trainer, prepared: Prepared, params: TrainParams, progress: ProgressReporter
) -> tuple[ModelBundle, dict[str, float]]:
    """Fit on the training rows, score on the holdout; the bundle and its metrics."""
    x, y = xy(prepared.train, prepared.features, params.target, prepared.dataset.info.uri)
    with permanent(MLError):
        estimator = trainer.fit(x, y, progress.within(3))
    progress.step(4, f"scoring on {len(prepared.holdout)} holdout rows")
    hx, hy = xy(prepared.holdout, prepared.features, params.target, prepared.dataset.info.uri)
    metrics = compute_metrics(params.task, hy, estimator.predict(hx))
    profile = feature_profile({name: prepared.train[name] for name in prepared.features})
    bundle = ModelBundle(
        estimator, prepared.features, params.target, params.task, trainer.framework, profile
    )
    return bundle, metrics


def training_lineage(event: Any, dataset: Dataset, run: str, model: str) -> Lineage:
    """The event's lineage, with this run and exactly this dataset (its version may be None)."""
    info = dataset.info
    lineage = Lineage.of(as_event(event)).with_(run_id=run, model=model)
    return lineage.model_copy(
        update={"dataset_uri": info.uri, "dataset_hash": info.hash, "dataset_version": info.version}
    )


def store(
    ctx: FunctionContext, key: str, bundle: ModelBundle, holdout: pd.DataFrame
) -> tuple[str, str]:
    """Put the bundle and the holdout in the artifact store; their URIs."""
    with tempfile.TemporaryDirectory(prefix="cumulo-train-") as folder:
        model_file = save_bundle(bundle, Path(folder) / "model.joblib")
        holdout_file = write_parquet(holdout, Path(folder) / "holdout.parquet")
        artifact = ctx.artifacts.put(f"{key}/model.joblib", model_file)
        holdout_uri = ctx.artifacts.put(f"{key}/holdout.parquet", holdout_file)
    return artifact, holdout_uri


@contextmanager
def permanent(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` into :class:`PermanentError`: retrying cannot fix them."""
    try:
        yield
    except errors as e:
        raise PermanentError(str(e)) from e


def _summary(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
