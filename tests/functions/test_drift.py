"""The drift check against a real champion: a scikit-learn model, its bundle, the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cloudevents.http import CloudEvent
from sklearn.linear_model import LogisticRegression

from cumulo.config import FunctionSettings
from cumulo.errors import PermanentError
from cumulo.events.lineage import CRON_TICK, DATASET_READY, MODEL_DRIFTED
from cumulo.functions.alert import send_alert
from cumulo.functions.context import FunctionContext
from cumulo.functions.drift import check_drift, population_stability
from cumulo.functions.modelfile import ModelBundle, feature_profile, save_bundle

MODEL = "churn"
SHIFT = 5.0  # months added to every tenure: PSI about 1 against the training data


def sample(rows: int, seed: int, *, shift_tenure: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, rows),
            "tenure": rng.exponential(24, rows) + shift_tenure,
        }
    )
    frame["churned"] = (frame["tenure"] < 12).astype(int)
    return frame


def make_ctx(tmp_path: Path, **params: Any) -> FunctionContext:
    params = {"model": MODEL, **params}
    settings = FunctionSettings(
        function="drift", state_dir=tmp_path, project_dir=tmp_path, params=params
    )
    return FunctionContext(settings)


def train_champion(ctx: FunctionContext, tmp_path: Path, *, promote: bool = True) -> int:
    """Fit, bundle with the training profile, register and (optionally) promote."""
    train = sample(2000, seed=1)
    features = ["age", "tenure"]
    estimator = LogisticRegression().fit(train[features].to_numpy(), train["churned"])
    profile = feature_profile({name: train[name] for name in features})
    bundle = ModelBundle(estimator, features, "churned", "classification", profile=profile)
    artifact = save_bundle(bundle, tmp_path / "artifacts" / MODEL / "model.joblib")
    version = ctx.models.register(MODEL, str(artifact), lineage={"datasetUri": "train.csv"})
    if promote:
        ctx.models.promote(MODEL, version.version)
    return version.version


def dataset_ready(uri: Path | str) -> CloudEvent:
    attributes = {"type": DATASET_READY, "source": "/cumulo/sources/prod-sample"}
    return CloudEvent(attributes, {"uri": str(uri)})


def test_data_like_the_training_data_has_not_drifted(tmp_path):
    ctx = make_ctx(tmp_path)
    train_champion(ctx, tmp_path)
    recent = tmp_path / "recent.csv"
    sample(1500, seed=2).to_csv(recent, index=False)

    assert check_drift(ctx, dataset_ready(recent)) is None


def test_shifted_data_is_a_drifted_event_naming_the_feature(tmp_path):
    ctx = make_ctx(tmp_path)
    version = train_champion(ctx, tmp_path)
    recent = tmp_path / "recent.parquet"
    sample(1500, seed=3, shift_tenure=SHIFT).to_parquet(recent, index=False)

    drifted = check_drift(ctx, dataset_ready(recent))

    assert drifted is not None
    assert drifted.type == MODEL_DRIFTED
    assert drifted.subject == MODEL
    data = drifted.data
    assert data["model"] == MODEL
    assert data["version"] == version
    assert data["dataset"] == str(recent)
    assert data["threshold"] == 0.2
    assert data["drifted"] == ["tenure"]
    assert data["psi"]["tenure"] > 0.2
    assert data["psi"]["age"] < 0.1
    assert data["lineage"]["model"] == MODEL
    assert data["lineage"]["modelVersion"] == version
    assert data["lineage"]["datasetUri"] == str(recent)


@pytest.mark.parametrize("params", [{"threshold": 2}, {"features": ["age"]}])
def test_the_threshold_and_features_come_from_params(tmp_path, params):
    ctx = make_ctx(tmp_path, **params)
    train_champion(ctx, tmp_path)
    recent = tmp_path / "recent.csv"
    sample(1500, seed=3, shift_tenure=SHIFT).to_csv(recent, index=False)

    assert check_drift(ctx, dataset_ready(recent)) is None


def test_a_scheduled_check_reads_params_dataset(tmp_path):
    recent = tmp_path / "recent.csv"
    sample(1500, seed=4, shift_tenure=SHIFT).to_csv(recent, index=False)
    ctx = make_ctx(tmp_path, dataset=str(recent))
    train_champion(ctx, tmp_path)
    tick = CloudEvent({"type": CRON_TICK, "source": "/cumulo/sources/hourly"}, {})

    drifted = check_drift(ctx, tick)

    assert drifted is not None
    assert drifted.data["dataset"] == str(recent)


def test_no_champion_means_nothing_to_compare(tmp_path, caplog):
    ctx = make_ctx(tmp_path)
    train_champion(ctx, tmp_path, promote=False)
    recent = tmp_path / "recent.csv"
    sample(100, seed=5, shift_tenure=SHIFT).to_csv(recent, index=False)

    with caplog.at_level("INFO", logger="cumulo.functions.drift"):
        assert check_drift(ctx, dataset_ready(recent)) is None
    assert "has no champion yet" in caplog.text


def test_a_dataset_without_the_features_is_permanent(tmp_path):
    ctx = make_ctx(tmp_path)
    train_champion(ctx, tmp_path)
    recent = tmp_path / "recent.csv"
    sample(100, seed=6).drop(columns=["tenure"]).to_csv(recent, index=False)

    with pytest.raises(PermanentError, match="no column 'tenure'"):
        check_drift(ctx, dataset_ready(recent))


def test_no_dataset_at_all_is_permanent(tmp_path):
    ctx = make_ctx(tmp_path)
    train_champion(ctx, tmp_path)
    tick = CloudEvent({"type": CRON_TICK, "source": "/cumulo/sources/hourly"}, {})

    with pytest.raises(PermanentError, match="no dataset"):
        check_drift(ctx, tick)


def test_psi_of_identical_and_disjoint_distributions():
    values = np.arange(1000, dtype=float)
    reference = feature_profile({"x": values})["x"]
    assert population_stability(values, reference) == pytest.approx(0.0, abs=1e-9)
    assert population_stability(values + 10_000, reference) > 5  # all in the last bin


def test_a_drifted_event_pages_through_alert(tmp_path, capsys):
    ctx = make_ctx(tmp_path)
    train_champion(ctx, tmp_path)
    recent = tmp_path / "recent.csv"
    sample(1500, seed=7, shift_tenure=SHIFT).to_csv(recent, index=False)
    drifted = check_drift(ctx, dataset_ready(recent))
    assert drifted is not None

    alert_ctx = FunctionContext(FunctionSettings(function="alert", state_dir=tmp_path))
    send_alert(alert_ctx, drifted)

    out = capsys.readouterr().out
    assert out.startswith(f"ALERT Model drifted: {MODEL} v1\n")
    assert "• tenure: PSI" in out
