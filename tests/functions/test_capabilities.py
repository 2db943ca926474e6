"""Capabilities come from the spec: which params an event may set, which data may be read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cumulo.config import FunctionSettings
from cumulo.errors import ArtifactError, CapabilityError, PermanentError
from cumulo.functions.alert import AlertParams
from cumulo.functions.build_image import BuildImageParams
from cumulo.functions.capabilities import (
    DATA_ROOTS_RULE,
    EVENT_SETTABLE,
    DataRoots,
    event_settable,
    hides_platform_paths,
)
from cumulo.functions.context import FunctionContext
from cumulo.functions.datasets import load_dataset
from cumulo.functions.deploy import DeployParams
from cumulo.functions.drift import DriftParams
from cumulo.functions.evaluate import EvaluateParams
from cumulo.functions.predict import PredictParams
from cumulo.functions.train import TrainParams, run_training
from tests.functions.conftest import MakeContext, classification_frame, cloud_event

SECRET_HEADER = "aws_secret_access_key,password\n"


class Sample(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    clone_url: str | None = None  # a field without the mark: the spec's alone
    seed: int = Field(default=0, json_schema_extra=EVENT_SETTABLE)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    """The functions' project folder (``make_ctx`` uses it): tmp_path/project."""
    return tmp_path / "project"


def context(tmp_path: Path, **params: object) -> FunctionContext:
    settings = FunctionSettings(
        function="f", state_dir=tmp_path / "state", project_dir=tmp_path / "project", params=params
    )
    return FunctionContext(settings)


# --- params -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "settable"),
    [
        (
            TrainParams,
            ["estimator", "holdoutFraction", "hyperparameters", "seed", "target", "task"],
        ),
        (EvaluateParams, []),
        (DriftParams, ["features", "threshold"]),
        (DeployParams, ["canaryPercent"]),
        (BuildImageParams, ["functions"]),
        (PredictParams, []),
        (AlertParams, []),
    ],
)
def test_each_params_model_says_what_an_event_may_set(model: type[BaseModel], settable: list[str]):
    assert event_settable(model) == settable


@pytest.mark.parametrize("key", ["cloneUrl", "clone_url"])
def test_an_event_cannot_set_a_spec_only_param(tmp_path: Path, key: str):
    ctx = context(tmp_path, cloneUrl="https://git.example.com/ok.git")
    event = cloud_event(data={"params": {key: "http://127.0.0.1:1/internal.git"}})
    with pytest.raises(CapabilityError) as refused:
        ctx.params(Sample, event)
    assert str(refused.value) == (
        "data.params.cloneUrl: set by the function's spec only "
        "(an event's data.params may set: seed)"
    )


def test_a_new_field_without_the_mark_is_the_specs_alone(tmp_path: Path):
    class Later(BaseModel):
        allowed_hosts: list[str] = []

    with pytest.raises(CapabilityError, match=r"data.params.allowed_hosts: .*may set: none"):
        context(tmp_path).params(Later, cloud_event(data={"params": {"allowed_hosts": ["*"]}}))


def test_an_event_may_choose_an_event_settable_param(tmp_path: Path):
    ctx = context(tmp_path, seed=1, cloneUrl="https://git.example.com/ok.git")
    params = ctx.params(Sample, cloud_event(data={"params": {"seed": 7}}))
    assert (params.seed, params.clone_url) == (7, "https://git.example.com/ok.git")


def test_either_spelling_of_an_event_choice_wins_over_the_spec(tmp_path: Path):
    ctx = context(tmp_path, model="m", holdoutFraction=0.3)
    params = ctx.params(TrainParams, cloud_event(data={"params": {"holdout_fraction": 0.5}}))
    assert params.holdout_fraction == 0.5


def test_an_unknown_event_param_is_left_to_the_model(tmp_path: Path):
    with pytest.raises(PermanentError, match=r"(?s)f params: .*epochs"):
        context(tmp_path).params(Sample, cloud_event(data={"params": {"epochs": 3}}))


@pytest.mark.parametrize("key", ["model", "dataset", "dataRoots"])
def test_train_refuses_an_event_that_renames_the_model_or_widens_the_data_roots(
    make_ctx: MakeContext, key: str
):
    ctx = make_ctx(model="churn")
    event = cloud_event(data={"uri": "data/ok.csv", "params": {key: ["/"]}})
    with pytest.raises(CapabilityError, match=f"data.params.{key}: set by the function's spec"):
        run_training(ctx, event)
    assert ctx.models.versions() == [] and ctx.published == []


# --- data roots ------------------------------------------------------------------


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """project/data/ok.csv, secret/secret.csv outside it, shared/ a declared root."""
    for folder in ("project/data", "secret", "shared", "state"):
        (tmp_path / folder).mkdir(parents=True)
    classification_frame(50).to_csv(tmp_path / "project/data/ok.csv", index=False)
    (tmp_path / "secret/secret.csv").write_text(SECRET_HEADER + "AKIA1,hunter2\n")
    (tmp_path / "shared/more.csv").write_text("a,target\n1,0\n")
    return tmp_path


def roots(tmp_path: Path, *declared: str, artifacts: str | None = None) -> DataRoots:
    settings = FunctionSettings(
        state_dir=tmp_path / "state", project_dir=tmp_path / "project", artifacts_url=artifacts
    )
    return DataRoots.of(settings, declared)


@pytest.mark.parametrize(
    "uri",
    [
        "data/ok.csv",
        "./data/../data/ok.csv",
        "{project}/data/ok.csv",
        "file://{project}/data/ok.csv",
    ],
)
def test_the_project_folder_is_a_data_root(layout: Path, uri: str):
    found = roots(layout).locate(uri.format(project=layout / "project"))
    assert found == os.path.realpath(layout / "project/data/ok.csv")


@pytest.mark.parametrize(
    "uri",
    [
        "{secret}",
        "file://{secret}",
        "../secret/secret.csv",
        "data/../../secret/secret.csv",
        "data/link.csv",  # a symlink inside the project to the secret outside it
        "data/linked-folder/secret.csv",
        "{missing}",  # refused the same whether it exists or not
        "http://127.0.0.1:1/secret.csv",
        "data/ok\0.csv",
    ],
)
def test_a_uri_outside_the_data_roots_is_refused(layout: Path, uri: str):
    os.symlink(layout / "secret/secret.csv", layout / "project/data/link.csv")
    os.symlink(layout / "secret", layout / "project/data/linked-folder")
    text = uri.format(secret=layout / "secret/secret.csv", missing=layout / "nowhere.csv")
    with pytest.raises(CapabilityError) as refused:
        roots(layout).locate(text)
    assert str(layout) not in str(refused.value)


def test_declared_roots_and_the_artifact_store_are_data_roots(layout: Path):
    (layout / "state/artifacts").mkdir()
    (layout / "state/artifacts/holdout.csv").write_text("a,target\n1,0\n")
    allowed = roots(layout, "../shared")
    assert allowed.locate(str(layout / "shared/more.csv")).endswith("shared/more.csv")
    assert allowed.locate(str(layout / "state/artifacts/holdout.csv")).endswith("holdout.csv")
    with pytest.raises(CapabilityError):
        allowed.locate(str(layout / "state/models.db"))  # the state folder is not one


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("s3://models/prod/churn/holdout.parquet", True),  # the artifact store
        ("s3://data/incoming/day.csv", True),  # declared
        ("s3://data/incomingx/day.csv", False),  # a prefix ends at a "/"
        ("s3://data/other/day.csv", False),
        ("s3://models/dev/x.csv", False),
        ("s3://models/prod/../dev/x.csv", False),
        ("s3:///x.csv", False),
    ],
)
def test_s3_uris_only_from_declared_buckets_and_prefixes(tmp_path: Path, uri: str, allowed: bool):
    found = roots(tmp_path, "s3://data/incoming/", artifacts="s3://models/prod")
    if allowed:
        assert found.locate(uri) == uri
    else:
        with pytest.raises(CapabilityError, match="outside the allowed data roots"):
            found.locate(uri)


def test_a_secret_csv_outside_the_roots_is_never_read(make_ctx: MakeContext, layout: Path):
    with pytest.raises(CapabilityError) as refused:
        load_dataset(make_ctx(), str(layout / "secret/secret.csv"))
    message = str(refused.value)
    assert message == DATA_ROOTS_RULE
    assert "password" not in message and "aws_secret" not in message


def test_a_declared_root_lets_the_function_read_there(make_ctx: MakeContext, layout: Path):
    dataset = load_dataset(make_ctx(), str(layout / "shared/more.csv"), ["../shared"])
    assert dataset.info.rows == 1


# --- what failures say ---------------------------------------------------------


def test_failures_name_the_state_folder_not_its_path(tmp_path: Path):
    ctx = context(tmp_path)
    state = str(tmp_path / "state")

    @hides_platform_paths
    def fails(ctx: FunctionContext, error: BaseException) -> None:
        raise error

    cases = [
        (PermanentError(f"cannot read {state}/models.db"), PermanentError),
        (ArtifactError(f"cannot store x at {state}/artifacts/m/model.joblib"), ArtifactError),
        (FileNotFoundError(2, "No such file or directory", f"{state}/cache/x"), FileNotFoundError),
    ]
    for error, kind in cases:
        with pytest.raises(kind) as raised:
            fails(ctx, error)
        assert state not in str(raised.value) and "STATE_DIR" in str(raised.value)
