"""evaluate: candidate against champion on the same holdout; promote, or reject and say why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cumulo.errors import CapabilityError, PermanentError
from cumulo.events.event import Event
from cumulo.events.lineage import MODEL_EVALUATED, MODEL_REJECTED, MODEL_TRAINED
from cumulo.functions.evaluate import evaluate, run_evaluation
from cumulo.functions.train import run_training
from tests.functions.conftest import MakeContext, classification_frame, cloud_event

WEAK = {"max_depth": 1, "n_estimators": 1}  # about 0.56 accuracy on this data
STRONG = {"n_estimators": 50}  # about 0.85


def trained(make_ctx: MakeContext, dataset: Path, **params: Any) -> Event:
    """Train a version of ``churn`` on ``dataset``; its ``model.trained`` event."""
    ctx = make_ctx("train", model="churn", **params)
    return run_training(ctx, cloud_event(data={"uri": str(dataset)}))


def judge(make_ctx: MakeContext, event: Event, **params: Any) -> list[Event]:
    """Evaluate what ``event`` announces, as the platform would hand it over (an SDK CloudEvent)."""
    sdk_event = cloud_event(MODEL_TRAINED, event.data, id=event.id, subject=event.subject)
    return run_evaluation(make_ctx("evaluate", **params), sdk_event)


def test_the_first_model_is_promotable(make_ctx: MakeContext, csv_dataset: Path):
    first = trained(make_ctx, csv_dataset, hyperparameters=WEAK)
    (verdict,) = judge(make_ctx, first)
    assert verdict.type == MODEL_EVALUATED and verdict.subject == "churn"
    assert verdict.source == "/cumulo/functions/evaluate"
    data = verdict.data
    assert data["promote"] is True and data["champion"] is None
    assert data["reason"] == "v1 has no champion to beat"
    assert (data["model"], data["version"], data["metric"], data["direction"]) == (
        "churn",
        1,
        "accuracy",
        "maximize",
    )
    assert data["candidate"] == {"metrics": first.data["metrics"]}  # the same holdout
    assert (data["artifact"], data["holdout"]) == (first.data["artifact"], first.data["holdout"])
    assert data["lineage"] == first.data["lineage"]
    registry = make_ctx().models
    assert registry.get("churn", 1).stage == "candidate"  # deploy promotes, evaluate does not


def test_a_worse_model_is_rejected_with_the_reason(make_ctx: MakeContext, csv_dataset: Path):
    registry = make_ctx().models
    champion = trained(make_ctx, csv_dataset, hyperparameters=STRONG)
    registry.promote("churn", 1)
    worse = trained(make_ctx, csv_dataset, hyperparameters=WEAK)
    verdict, rejected = judge(make_ctx, worse)

    mine, theirs = worse.data["metrics"]["accuracy"], champion.data["metrics"]["accuracy"]
    assert mine < theirs
    assert verdict.data["promote"] is False
    assert verdict.data["champion"] == {"version": 1, "metrics": champion.data["metrics"]}
    reason = f"accuracy {mine:.4f} against {theirs:.4f} of the champion v1: not better (maximize)"
    assert verdict.data["reason"] == reason
    assert rejected.type == MODEL_REJECTED and rejected.subject == "churn"
    assert rejected.data == {
        "model": "churn",
        "version": 2,
        "reason": reason,
        "metric": "accuracy",
        "candidate": {"metrics": worse.data["metrics"]},
        "champion": {"version": 1, "metrics": champion.data["metrics"]},
        "lineage": worse.data["lineage"],
    }
    assert (registry.get("churn", 2).stage, registry.get("churn", 2).note) == ("rejected", reason)
    assert registry.get("churn", 1).stage == "champion"


def test_a_better_model_must_beat_the_champion_by_min_improvement(
    make_ctx: MakeContext, csv_dataset: Path
):
    registry = make_ctx().models
    weak = trained(make_ctx, csv_dataset, hyperparameters=WEAK)
    registry.promote("churn", 1)
    strong = trained(make_ctx, csv_dataset, hyperparameters=STRONG)
    gain = strong.data["metrics"]["accuracy"] - weak.data["metrics"]["accuracy"]
    assert gain > 0.2

    verdict, _ = judge(make_ctx, strong, minImprovement=round(gain + 0.01, 4))
    assert verdict.data["promote"] is False
    assert verdict.data["reason"].endswith(f"not better by at least {gain + 0.01:.4g} (maximize)")

    again = trained(make_ctx, csv_dataset, hyperparameters=STRONG)
    (verdict,) = judge(make_ctx, again, minImprovement=round(gain, 4))  # exactly enough
    assert verdict.data["promote"] is True
    assert verdict.data["reason"].endswith(f"better by {gain:.4g}")
    assert registry.get("churn", 3).stage == "candidate"


def test_a_tie_keeps_the_champion(make_ctx: MakeContext, csv_dataset: Path):
    registry = make_ctx().models
    trained(make_ctx, csv_dataset, hyperparameters=STRONG)
    registry.promote("churn", 1)
    verdict, rejected = judge(make_ctx, trained(make_ctx, csv_dataset, hyperparameters=STRONG))
    assert verdict.data["promote"] is False and rejected.data["version"] == 2


def test_metric_and_direction_can_be_chosen(make_ctx: MakeContext, csv_dataset: Path):
    registry = make_ctx().models
    trained(make_ctx, csv_dataset, hyperparameters=STRONG)
    registry.promote("churn", 1)
    worse = trained(make_ctx, csv_dataset, hyperparameters=WEAK)
    (verdict,) = judge(make_ctx, worse, metric="f1_macro", direction="minimize")
    assert (verdict.data["metric"], verdict.data["direction"]) == ("f1_macro", "minimize")
    assert verdict.data["promote"] is True  # a perverse choice, but the user's


def test_regression_minimizes_rmse_by_default(make_ctx: MakeContext, regression_dataset: Path):
    registry = make_ctx().models
    params = {"task": "regression", "target": "price"}
    trained(make_ctx, regression_dataset, estimator="random_forest", **params)
    registry.promote("churn", 1)
    linear = trained(make_ctx, regression_dataset, estimator="linear", **params)
    (verdict,) = judge(make_ctx, linear)
    assert (verdict.data["metric"], verdict.data["direction"]) == ("rmse", "minimize")
    assert verdict.data["promote"] is True  # the data is linear: the linear model wins
    assert (
        verdict.data["candidate"]["metrics"]["rmse"] < verdict.data["champion"]["metrics"]["rmse"]
    )


def test_a_fixed_holdout_scores_both_and_is_recorded(
    make_ctx: MakeContext, csv_dataset: Path, data_dir: Path
):
    fixed = data_dir / "fixed.parquet"
    classification_frame(120, seed=7).to_parquet(fixed)  # the same distribution, other rows
    registry = make_ctx().models
    trained(make_ctx, csv_dataset, hyperparameters=STRONG)
    registry.promote("churn", 1)
    candidate = trained(make_ctx, csv_dataset, hyperparameters=WEAK)
    verdict, _ = judge(make_ctx, candidate, holdout=f"file://{fixed}")
    assert verdict.data["holdout"] == f"file://{fixed}"
    assert verdict.data["candidate"]["metrics"] != candidate.data["metrics"]
    assert registry.get("churn", 2).metrics == verdict.data["candidate"]["metrics"]


def test_a_redelivered_event_for_the_champion_stays_promoted(
    make_ctx: MakeContext, csv_dataset: Path
):
    first = trained(make_ctx, csv_dataset)
    make_ctx().models.promote("churn", 1)
    (verdict,) = judge(make_ctx, first, minImprovement=0.5)
    assert (
        verdict.data["promote"] is True and verdict.data["reason"] == "v1 is the champion already"
    )


def test_an_unknown_metric_names_the_known_ones(make_ctx: MakeContext, csv_dataset: Path):
    first = trained(make_ctx, csv_dataset)
    with pytest.raises(
        PermanentError, match="unknown classification metric 'rmse'; known: accuracy, f1_macro"
    ):
        judge(make_ctx, first, metric="rmse")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": "churn"}, "needs 'model' \\(a name\\) and 'version'"),
        (
            {"model": "churn", "version": 9, "holdout": "h.parquet"},
            "model 'churn' has no version 9",
        ),
    ],
)
def test_events_naming_no_version_fail_permanently(make_ctx: MakeContext, data: dict, message: str):
    with pytest.raises(PermanentError, match=message):
        run_evaluation(make_ctx("evaluate"), cloud_event(MODEL_TRAINED, data))


def test_a_champion_that_cannot_be_scored_needs_a_person(
    make_ctx: MakeContext, csv_dataset: Path, data_dir: Path
):
    registry = make_ctx().models
    trained(make_ctx, csv_dataset)
    registry.promote("churn", 1)
    narrower = data_dir / "narrower.csv"
    classification_frame().drop(columns=["f7"]).to_csv(narrower, index=False)
    candidate = trained(make_ctx, narrower)
    with pytest.raises(
        PermanentError, match=r"the champion v1 cannot be scored: .*'f7'.*cumulo models promote"
    ):
        judge(make_ctx, candidate)
    assert registry.get("churn", 2).stage == "candidate"


def test_the_function_itself_reads_its_settings(
    monkeypatch: pytest.MonkeyPatch, make_ctx: MakeContext, state_dir: Path, csv_dataset: Path
):
    first = trained(make_ctx, csv_dataset)
    monkeypatch.setenv("CUMULO_FUNCTION", "judge")
    monkeypatch.setenv("CUMULO_STATE_DIR", str(state_dir))
    monkeypatch.setenv("CUMULO_PARAMS", json.dumps({"metric": "f1_macro"}))
    (verdict,) = evaluate(cloud_event(MODEL_TRAINED, first.data))
    assert verdict.source == "/cumulo/functions/judge" and verdict.data["metric"] == "f1_macro"


def test_a_holdout_outside_the_data_roots_is_refused_without_a_word_of_it(
    make_ctx: MakeContext, csv_dataset: Path, tmp_path_factory: pytest.TempPathFactory
):
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.csv"
    secret.write_text("aws_secret_access_key,password\nAKIA1,hunter2\n")
    candidate = trained(make_ctx, csv_dataset)
    forged = cloud_event(MODEL_TRAINED, {**candidate.data, "holdout": str(secret)})
    with pytest.raises(CapabilityError) as refused:
        run_evaluation(make_ctx("evaluate"), forged)
    message = str(refused.value)
    assert "dataset URI outside the allowed data roots" in message
    assert "password" not in message and str(secret.parent) not in message
    assert make_ctx().models.get("churn", 1).stage == "candidate"  # judged on nothing


def test_an_event_cannot_lower_the_bar(make_ctx: MakeContext, csv_dataset: Path):
    candidate = trained(make_ctx, csv_dataset)
    event = cloud_event(MODEL_TRAINED, {**candidate.data, "params": {"minImprovement": 0}})
    with pytest.raises(
        CapabilityError, match=r"data\.params\.minImprovement: set by the function's spec"
    ):
        run_evaluation(make_ctx("evaluate", minImprovement=0.5), event)
