"""train: a real fit on real files, a registered candidate, lineage and progress."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from cumulo.context import running
from cumulo.errors import MissingExtraError, MLError, PermanentError
from cumulo.events.lineage import CRON_TICK, MODEL_TRAINED, RUN_PROGRESS
from cumulo.functions.estimators import build_trainer, compute_metrics
from cumulo.functions.modelfile import load_bundle
from cumulo.functions.torch_mlp import TorchMLP
from cumulo.functions.train import STEPS, run_training, train
from tests.functions.conftest import MakeContext, cloud_event


def test_train_registers_a_candidate_and_says_so(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn")
    event = cloud_event(data={"uri": str(csv_dataset)})
    with running("run-42"):
        trained = run_training(ctx, event)

    assert trained.type == MODEL_TRAINED and trained.subject == "churn"
    assert trained.source == "/cumulo/functions/train"
    data = trained.data
    assert {k: data[k] for k in ("model", "version", "estimator")} == {
        "model": "churn",
        "version": 1,
        "estimator": "random_forest",
    }
    assert data["artifact"] == str(ctx.settings.state_dir / "artifacts/churn/run-42/model.joblib")
    assert data["holdout"] == str(ctx.settings.state_dir / "artifacts/churn/run-42/holdout.parquet")
    assert set(data["metrics"]) == {"accuracy", "f1_macro"}
    assert data["metrics"]["accuracy"] > 0.75
    digest = "sha256:" + hashlib.sha256(csv_dataset.read_bytes()).hexdigest()
    assert data["lineage"] == {
        "datasetUri": str(csv_dataset),
        "datasetHash": digest,
        "runId": "run-42",
        "model": "churn",
        "modelVersion": 1,
        "triggerEvent": event["id"],
    }


def test_the_registry_records_metrics_params_and_lineage(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn", hyperparameters={"n_estimators": 20}, seed=3)
    trained = run_training(ctx, cloud_event(data={"uri": str(csv_dataset)}))
    version = ctx.models.get("churn", 1)
    assert version.stage == "candidate"
    assert version.artifact == trained.data["artifact"]
    assert version.metrics == trained.data["metrics"]
    assert version.params == {
        "target": "target",
        "task": "classification",
        "estimator": "random_forest",
        "hyperparameters": {"n_estimators": 20},
        "holdoutFraction": 0.2,
        "seed": 3,
    }
    assert version.lineage["datasetHash"] == trained.data["lineage"]["datasetHash"]
    assert version.lineage["runId"] == trained.data["lineage"]["runId"]  # a fresh id outside a job
    assert run_training(ctx, cloud_event(data={"uri": str(csv_dataset)})).data["version"] == 2


def test_the_stored_bundle_and_holdout_are_what_evaluation_needs(
    make_ctx: MakeContext, parquet_dataset: Path
):
    ctx = make_ctx(model="churn", holdoutFraction=0.25)
    trained = run_training(ctx, cloud_event(data={"uri": str(parquet_dataset)}))
    bundle = load_bundle(Path(trained.data["artifact"]))
    holdout = pd.read_parquet(trained.data["holdout"])
    features = [f"f{i}" for i in range(8)]
    assert (bundle.features, bundle.target, bundle.task, bundle.framework) == (
        features,
        "target",
        "classification",
        "sklearn",
    )
    assert set(bundle.profile) == set(features)
    assert len(holdout) == 100 and list(holdout.columns) == [*features, "target"]
    predicted = bundle.predict(holdout[features].to_numpy())
    assert (
        compute_metrics("classification", holdout["target"], predicted) == trained.data["metrics"]
    )


def test_progress_is_published_at_each_step(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn")
    with running("run-7"):
        run_training(ctx, cloud_event(data={"uri": str(csv_dataset)}))
    progress = [event.data for event in ctx.published]
    assert all(event.type == RUN_PROGRESS for event in ctx.published)
    assert all(event.subject == "churn" for event in ctx.published)
    assert {(p["run"], p["function"], p["model"], p["total"]) for p in progress} == {
        ("run-7", "train", "churn", len(STEPS))
    }
    assert [p["step"] for p in progress] == [1, 2, 3, 3, 4, 5, 6, 6]
    assert [p["stage"] for p in progress][:3] == ["load dataset", "split", "fit"]
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    assert progress[2]["message"] == "fitting random_forest on 320 rows"
    assert progress[3]["message"] == "fitted random_forest"
    assert progress[-1]["message"].startswith("churn v1 trained: accuracy ")


def test_regression_with_a_linear_model(make_ctx: MakeContext, regression_dataset: Path):
    ctx = make_ctx(model="prices", task="regression", target="price", estimator="linear")
    trained = run_training(ctx, cloud_event(data={"uri": str(regression_dataset)}))
    assert set(trained.data["metrics"]) == {"rmse", "mae", "r2"}
    assert trained.data["metrics"]["r2"] > 0.95
    assert load_bundle(Path(trained.data["artifact"])).task == "regression"


def test_a_cron_tick_trains_on_the_dataset_param(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn", dataset=f"file://{csv_dataset}")
    trained = run_training(ctx, cloud_event(CRON_TICK, {"schedule": "@daily"}))
    assert trained.data["lineage"]["datasetUri"] == f"file://{csv_dataset}"


def test_event_params_override_the_function_params(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn", estimator="random_forest")
    event = cloud_event(
        data={"uri": str(csv_dataset), "params": {"estimator": "logistic_regression"}}
    )
    assert run_training(ctx, event).data["estimator"] == "logistic_regression"
    assert ctx.models.get("churn", 1).params["estimator"] == "logistic_regression"


@pytest.mark.parametrize(
    ("params", "data", "message"),
    [
        ({"model": "m"}, {}, "no dataset: the event's data has no 'uri'"),
        ({}, {"uri": "x.csv"}, "(?s)train params: .*model"),
        ({"model": "m", "epochs": 3}, {"uri": "x.csv"}, "(?s)train params: .*epochs"),
        ({"model": "m", "holdoutFraction": 1.5}, {"uri": "x.csv"}, "holdoutFraction"),
        (
            {"model": "m", "estimator": "svm"},
            {"uri": "x.csv"},
            "unknown classification estimator 'svm'",
        ),
        (
            {"model": "m", "task": "regression", "estimator": "logistic_regression"},
            {"uri": "x.csv"},
            "known: random_forest, gradient_boosting, linear, torch_mlp",
        ),
        (
            {"model": "m", "hyperparameters": {"trees": 5}},
            {"uri": "x.csv"},
            "'random_forest' \\(RandomForestClassifier\\) has no hyperparameter 'trees'; known: ",
        ),
    ],
)
def test_mistakes_fail_permanently_before_any_work(
    make_ctx: MakeContext, params: dict, data: dict, message: str
):
    ctx = make_ctx(**params)
    with pytest.raises(PermanentError, match=message):
        run_training(ctx, cloud_event(data=data))
    assert ctx.models.versions() == []


def test_bad_data_fails_permanently_naming_the_dataset(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn", target="label")
    with pytest.raises(PermanentError, match=r"dataset data/classes\.csv: no column 'label'"):
        run_training(ctx, cloud_event(data={"uri": "data/classes.csv"}))
    with pytest.raises(PermanentError, match="no such file"):
        run_training(ctx, cloud_event(data={"uri": str(csv_dataset) + ".missing.csv"}))
    assert ctx.models.versions() == [] and ctx.published[-1].data["stage"] == "load dataset"


def test_bad_hyperparameter_values_fail_permanently(make_ctx: MakeContext, csv_dataset: Path):
    ctx = make_ctx(model="churn", hyperparameters={"n_estimators": -3})
    with pytest.raises(PermanentError, match=r"'random_forest' cannot be fitted: .*n_estimators"):
        run_training(ctx, cloud_event(data={"uri": str(csv_dataset)}))


def test_the_function_itself_reads_its_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, csv_dataset: Path
):
    monkeypatch.chdir(tmp_path)  # progress goes nowhere: no platform runs here
    monkeypatch.setenv("CUMULO_FUNCTION", "trainer")
    monkeypatch.setenv("CUMULO_STATE_DIR", str(tmp_path / "env-state"))
    monkeypatch.setenv(
        "CUMULO_PARAMS", json.dumps({"model": "churn", "estimator": "gradient_boosting"})
    )
    trained = train(cloud_event(data={"uri": str(csv_dataset)}))
    assert trained.source == "/cumulo/functions/trainer"
    assert trained.data["artifact"].startswith(str(tmp_path / "env-state" / "artifacts" / "churn"))
    assert (tmp_path / "env-state" / "models.db").is_file()


# --- the trainers -------------------------------------------------------------


def test_torch_mlp_without_torch_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(MissingExtraError, match=r"needs PyTorch.*pip install 'cumulo\[torch\]'"):
        build_trainer("classification", "torch_mlp", {"epochs": 5})


def test_torch_mlp_without_torch_fails_train_permanently(
    monkeypatch: pytest.MonkeyPatch, make_ctx: MakeContext, csv_dataset: Path
):
    monkeypatch.setitem(sys.modules, "torch", None)
    ctx = make_ctx(model="churn", estimator="torch_mlp")
    with pytest.raises(PermanentError, match=r"pip install 'cumulo\[torch\]'"):
        run_training(ctx, cloud_event(data={"uri": str(csv_dataset)}))


def test_torch_mlp_hyperparameters_are_checked():
    with pytest.raises(
        MLError,
        match=r"torch_mlp': n_estimators: Extra inputs are not permitted \(known: hidden_layers, ",
    ):
        build_trainer("classification", "torch_mlp", {"n_estimators": 5})


def test_a_fitted_torch_mlp_predicts_and_pickles_without_torch(tmp_path: Path):
    # Weights as fit() leaves them: the forward pass is NumPy, so no PyTorch is needed here.
    model = TorchMLP("classification")
    model.x_mean_, model.x_scale_ = np.array([1.0, 0.0]), np.array([2.0, 1.0])
    model.classes_ = np.array(["no", "yes"])
    model.layers_ = [
        (np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)),
        (np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2)),
    ]
    rows = [[5.0, 0.0], [1.0, 3.0]]
    assert model.predict(rows).tolist() == ["no", "yes"]
    joblib.dump(model, tmp_path / "mlp.joblib")
    assert joblib.load(tmp_path / "mlp.joblib").predict(rows).tolist() == ["no", "yes"]


def test_a_regression_torch_mlp_undoes_the_target_scaling():
    model = TorchMLP("regression")
    model.x_mean_, model.x_scale_ = np.zeros(1), np.ones(1)
    model.y_mean_, model.y_scale_ = 10.0, 2.0
    model.layers_ = [(np.array([[1.0]]), np.zeros(1)), (np.array([[1.0]]), np.zeros(1))]
    assert model.predict([[1.5], [-1.0]]).tolist() == [13.0, 10.0]  # ReLU clips the second


def test_an_unfitted_torch_mlp_refuses_to_predict():
    with pytest.raises(MLError, match="before fit"):
        TorchMLP("regression").predict([[1.0]])


def test_sklearn_trainers_report_before_and_after_fitting():
    reports: list[tuple[float, str]] = []
    trainer = build_trainer("regression", "gradient_boosting", {"n_estimators": 5}, seed=4)
    assert trainer.estimator.random_state == 4
    fitted = trainer.fit(
        np.arange(20.0).reshape(10, 2), np.arange(10.0), lambda f, m: reports.append((f, m))
    )
    assert reports == [
        (0.0, "fitting gradient_boosting on 10 rows"),
        (1.0, "fitted gradient_boosting"),
    ]
    assert len(fitted.predict(np.zeros((3, 2)))) == 3
    assert build_trainer("regression", "linear").estimator.get_params()["fit_intercept"] is True


# --- PyTorch, for real (./scripts/test installs it) ----------------------------


def test_torch_mlp_trains_a_classifier_with_progress_per_epoch(
    make_ctx: MakeContext, csv_dataset: Path
):
    import torch

    ctx = make_ctx(
        model="churn", estimator="torch_mlp", hyperparameters={"epochs": 30, "hidden_layers": [32]}
    )
    trained = run_training(ctx, cloud_event(data={"uri": str(csv_dataset)}))

    assert trained.data["estimator"] == "torch_mlp"
    assert trained.data["metrics"]["accuracy"] > 0.8
    bundle = load_bundle(Path(trained.data["artifact"]))
    assert bundle.framework == "torch"
    expected = "cuda" if torch.cuda.is_available() else "cpu"  # the GPU whenever there is one
    assert bundle.estimator.device_.startswith(expected)
    epochs = [e.data["message"] for e in ctx.published if "epoch" in e.data["message"]]
    assert len(epochs) == 30 and epochs[-1].startswith("epoch 30/30")


def test_torch_mlp_regression_beats_predicting_the_mean(
    make_ctx: MakeContext, regression_dataset: Path
):
    ctx = make_ctx(
        model="prices",
        task="regression",
        target="price",
        estimator="torch_mlp",
        hyperparameters={"epochs": 200, "learning_rate": 0.01},
    )
    trained = run_training(ctx, cloud_event(data={"uri": str(regression_dataset)}))
    assert trained.data["metrics"]["r2"] > 0.8
