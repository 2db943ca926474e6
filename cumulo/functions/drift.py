"""``drift``: has the data a model sees moved away from the data it was trained on?

::

    - name: drift
      handler: cumulo.functions.drift:drift
      triggers: [{type: dev.cumulo.dataset.ready, source: /cumulo/sources/prod-sample}]
      params:
        model: churn          # whose champion to check
        dataset: null         # the recent data, when the event's data.uri does not name it
        threshold: 0.2        # PSI above which a feature has drifted
        features: null        # default: every feature of the champion
        dataRoots: []         # where else datasets may be read (see capabilities)

The recent dataset (CSV or Parquet, by path, ``file://`` or ``s3://``) is binned
with the edges of the champion's training profile (deciles of each feature,
stored in its :class:`~cumulo.functions.modelfile.ModelBundle`), and each
feature's population stability index is

    PSI = Σ (recent - training) · ln(recent / training)   over the bins,

with empty bins counted as :data:`EPSILON`. By the usual rule of thumb a PSI
under 0.1 is no change, 0.1 to 0.2 a moderate one and over 0.2 a significant one.
When any feature's PSI exceeds the threshold the function returns
``dev.cumulo.model.drifted`` (subject: the model) naming those features; else
it returns nothing. A model with no champion yet has nothing to compare with:
that is logged, not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import functions_framework
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.extras import from_extra

with from_extra("ml", needed_by=__name__):
    import numpy as np
    import pandas as pd
    from pandas.api import types as pdtypes

from cumulo.errors import DatasetError, PermanentError
from cumulo.events.event import Event
from cumulo.events.lineage import MODEL_DRIFTED, Lineage, lineage_event
from cumulo.functions.capabilities import DATA_ROOTS_HELP, EVENT_SETTABLE, hides_platform_paths
from cumulo.functions.context import FunctionContext, as_event, event_data
from cumulo.functions.datasets import load_dataset
from cumulo.functions.model_registry import ModelVersion
from cumulo.functions.modelfile import ModelBundle, bin_fractions, load_bundle

EPSILON = 1e-4  # the fraction an empty bin counts as: ln(0) has no value
log = logging.getLogger("cumulo.functions.drift")


class DriftParams(BaseModel):
    """Which model and data (the spec's alone) and how sensitive (an event may choose)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    model: str = Field(min_length=1, description="The registered model whose champion to check.")
    dataset: str | None = Field(default=None, description="Recent data, if the event names none.")
    threshold: float = Field(
        default=0.2, gt=0, description="PSI above which a feature drifted.",
        json_schema_extra=EVENT_SETTABLE,
    )  # fmt: skip
    features: list[str] | None = Field(
        default=None, description="Default: all the model's.", json_schema_extra=EVENT_SETTABLE
    )
    data_roots: list[str] = Field(default=[], description=DATA_ROOTS_HELP)


@functions_framework.cloud_event  # type: ignore[arg-type]  # Cumulo publishes what it returns
def drift(event: Any) -> Event | None:
    """The function: ``handler: cumulo.functions.drift:drift``."""
    return check_drift(FunctionContext.current(), event)


@hides_platform_paths
def check_drift(ctx: FunctionContext, event: Any) -> Event | None:
    """``model.drifted`` if the recent data moved away from the champion's training data."""
    params = ctx.params(DriftParams, event)
    uri = _dataset_uri(event, params)
    champion = ctx.models.champion(params.model)
    if champion is None:
        log.info(
            "drift: model %r has no champion yet; nothing to compare %s with", params.model, uri
        )
        return None
    bundle = _bundle(ctx, champion)
    features = _features(bundle, params, champion)
    with _permanent(DatasetError):
        dataset = load_dataset(ctx, uri, params.data_roots)
        dataset.require_columns(features)
        psi = {name: _psi(dataset.frame[name], bundle.profile[name], uri) for name in features}
    drifted = sorted((f for f in features if psi[f] > params.threshold), key=lambda f: -psi[f])
    log.info(
        "drift: %s v%d on %s: PSI %s; drifted: %s",
        params.model,
        champion.version,
        uri,
        psi,
        ", ".join(drifted) or "none",
    )
    if not drifted:
        return None
    data = {
        "model": params.model,
        "version": champion.version,
        "dataset": uri,
        "threshold": params.threshold,
        "psi": psi,
        "drifted": drifted,
    }
    lineage = Lineage.of(as_event(event)).with_(
        model=params.model, model_version=champion.version, run_id=ctx.run_id
    )
    return lineage_event(MODEL_DRIFTED, ctx.name, data, lineage, subject=params.model)


def population_stability(values: Any, reference: Mapping[str, list[float]]) -> float:
    """The PSI of ``values`` against a profile entry (``edges``, ``fractions``)."""
    expected = np.clip(np.asarray(reference["fractions"], dtype=float), EPSILON, None)
    actual = np.clip(np.asarray(bin_fractions(values, reference["edges"])), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _psi(column: pd.Series, reference: Mapping[str, list[float]], uri: str) -> float:
    if not pdtypes.is_numeric_dtype(column):
        raise DatasetError(f"dataset {uri}: column {column.name!r} is not numeric")
    values = column.dropna()
    if values.empty:
        raise DatasetError(f"dataset {uri}: column {column.name!r} has no values")
    return round(population_stability(values.to_numpy(dtype=float), reference), 6)


def _dataset_uri(event: Any, params: DriftParams) -> str:
    uri = event_data(event).get("uri") or params.dataset
    if not isinstance(uri, str) or not uri:
        raise PermanentError(
            "drift: no dataset: the event's data has no 'uri' and params.dataset is not set"
        )
    return uri


def _bundle(ctx: FunctionContext, champion: ModelVersion) -> ModelBundle:
    """The champion's bundle (a store that is down is worth a retry; a bad file is not)."""
    local = ctx.fetch(champion.artifact)
    try:
        return load_bundle(local.path)
    except Exception as e:  # joblib raises whatever unpickling raises
        raise PermanentError(
            f"drift: {champion.name} v{champion.version}: cannot load {champion.artifact}: {e}"
        ) from e


def _features(bundle: ModelBundle, params: DriftParams, champion: ModelVersion) -> list[str]:
    """The features to compare; each must have a training profile."""
    features = params.features or bundle.features
    missing = [name for name in features if name not in bundle.profile]
    if missing:
        raise PermanentError(
            f"drift: {champion.name} v{champion.version} has no training profile for "
            f"{', '.join(map(repr, missing))} (profiled: {', '.join(bundle.profile) or 'none'})"
        )
    return list(features)


@contextmanager
def _permanent(*errors: type[Exception]) -> Iterator[None]:
    """Turn ``errors`` into :class:`PermanentError`: retrying cannot fix them."""
    try:
        yield
    except errors as e:
        raise PermanentError(str(e)) from e
