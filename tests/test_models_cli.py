"""`cumulo models`: list, show, promote and rollback against a real registry."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cumulo.cli import app
from cumulo.functions.model_registry import ModelRegistry

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("CUMULO_STATE_DIR", raising=False)
    return tmp_path


@pytest.fixture
def registry(project) -> ModelRegistry:
    models = ModelRegistry(project / ".cumulo" / "models.db")
    lineage = {"datasetUri": "s3://data/iris.csv", "runId": "run-7"}
    models.register("iris", "/a/iris-1.joblib", metrics={"accuracy": 0.91, "f1": 0.9})
    models.register(
        "iris", "/a/iris-2.joblib", metrics={"accuracy": 0.953}, params={"C": 1.0}, lineage=lineage
    )
    models.register("wine", "/a/wine-1.joblib", metrics={"rmse": 0.5})
    models.promote("iris", 1)
    models.promote("iris", 2)
    return models


def cumulo(project, *args):
    return runner.invoke(app, ["models", *args, "--dir", str(project)])


def test_list_shows_every_version(project, registry):
    result = cumulo(project, "list")

    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "iris" in line or "wine" in line]
    assert len(lines) == 3
    assert "v2" in lines[1] and "champion" in lines[1] and "accuracy=0.953" in lines[1]
    assert "archived" in lines[0] and "accuracy=0.91  f1=0.9" in lines[0]
    assert "candidate" in lines[2] and "rmse=0.5" in lines[2]


def test_list_one_model(project, registry):
    result = cumulo(project, "list", "wine")
    assert result.exit_code == 0
    assert "wine" in result.stdout and "iris" not in result.stdout


def test_list_before_anything_is_registered(project):
    result = cumulo(project, "list")
    assert result.exit_code == 0
    assert "no models registered yet" in result.stdout
    assert not (project / ".cumulo").exists()


def test_show_has_stage_artifact_metrics_params_lineage_and_history(project, registry):
    result = cumulo(project, "show", "iris", "2")

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "iris v2  champion" in out
    assert "/a/iris-2.joblib" in out
    assert "accuracy=0.953" in out
    assert '{"C": 1.0}' in out
    assert '"datasetUri": "s3://data/iris.csv"' in out and '"runId": "run-7"' in out
    assert "promote  v1  (first champion)" in out
    assert "→" in out and "promote  v2  (from v1)" in out


def test_promote_and_rollback(project, registry):
    promoted = cumulo(project, "promote", "iris", "1")
    assert promoted.exit_code == 0, promoted.output
    assert "iris v1 is champion (was v2)" in promoted.stdout
    assert registry.champion_version("iris") == 1

    rolled = cumulo(project, "rollback", "iris")
    assert rolled.exit_code == 0, rolled.output
    assert "iris rolled back to v2 (from v1); v2 is champion" in rolled.stdout
    assert registry.champion_version("iris") == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "iris", "9"), "model 'iris' has no version 9"),
        (("show", "nope", "1"), "model 'nope' has no version 1"),
        (("promote", "iris", "9"), "model 'iris' has no version 9"),
        (("rollback", "wine"), "model 'wine' has no earlier champion to roll back to"),
        (("list", "nope"), "no model named 'nope'"),
    ],
)
def test_mistakes_are_one_line_and_exit_1(project, registry, args, message):
    result = cumulo(project, *args)

    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {message}"
    assert "Traceback" not in result.output


def test_commands_on_a_project_without_a_registry_say_so(project):
    result = cumulo(project, "rollback", "iris")
    assert result.exit_code == 1
    assert "no models registered yet" in result.stderr
    assert not (project / ".cumulo").exists()


def test_the_state_dir_setting_is_honoured(tmp_path, monkeypatch):
    state = tmp_path / "elsewhere"
    ModelRegistry(state / "models.db").register("iris", "/a/1.joblib")
    monkeypatch.setenv("CUMULO_STATE_DIR", str(state))

    result = runner.invoke(app, ["models", "promote", "iris", "1", "--dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "iris v1 is champion" in result.stdout
