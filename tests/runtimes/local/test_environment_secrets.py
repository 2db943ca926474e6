"""A function's environment beyond the basics: its publish token, how its secrets are
named and found, and what an unset one does (complements test_environment.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cumulo.runtimes.local.environment import (
    declared_secrets,
    function_environment,
    worker_settings,
)
from cumulo.spec.models import SecretRef
from tests.runtimes.local.conftest import function_spec


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_TOKEN", "model-secret")
    monkeypatch.setenv("REGISTRY_PASSWORD", "registry-secret")
    monkeypatch.setenv("EMPTY_ONE", "")
    monkeypatch.delenv("NEVER_SET", raising=False)


def test_the_publish_token_is_given_only_when_there_is_one(tmp_path: Path) -> None:
    fn = function_spec()

    with_token = function_environment(fn, project=tmp_path, state=tmp_path, publish_token="pt-1")
    without = function_environment(fn, project=tmp_path, state=tmp_path)

    assert with_token["CUMULO_PUBLISH_TOKEN"] == "pt-1"
    assert "CUMULO_PUBLISH_TOKEN" not in without


def test_a_secret_is_read_from_the_variable_its_reference_names() -> None:
    refs = [
        SecretRef.model_validate({"name": "registry", "key": "password"}),  # NAME_KEY
        SecretRef.model_validate({"env": "MODEL_TOKEN"}),  # the variable itself
    ]

    assert declared_secrets("fn", refs) == {
        "REGISTRY_PASSWORD": "registry-secret",
        "MODEL_TOKEN": "model-secret",
    }


def test_an_unset_or_empty_secret_is_left_out_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    refs = [SecretRef.model_validate({"env": name}) for name in ("NEVER_SET", "EMPTY_ONE")]
    caplog.set_level(logging.WARNING, logger="cumulo.environment")

    assert declared_secrets("train", refs) == {}
    assert "function train: its secret NEVER_SET is not set" in caplog.text
    assert "function train: its secret EMPTY_ONE is not set" in caplog.text
    assert "registry-secret" not in caplog.text


def test_a_declared_secret_wins_over_the_same_name_in_spec_env(tmp_path: Path) -> None:
    fn = function_spec(env={"MODEL_TOKEN": "written in the spec"}, secrets=[{"env": "MODEL_TOKEN"}])

    env = function_environment(fn, project=tmp_path, state=tmp_path)

    assert env["MODEL_TOKEN"] == "model-secret"


def test_the_worker_settings_name_the_function_and_its_folders(tmp_path: Path) -> None:
    fn = function_spec("train", params={"epochs": 3, "layers": [8, 4]})

    settings = worker_settings(fn, project=tmp_path / "p" / "..", state=tmp_path / "s")

    assert settings == {
        "CUMULO_FUNCTION": "train",
        "CUMULO_PROJECT_DIR": str(tmp_path.resolve()),
        "CUMULO_STATE_DIR": str((tmp_path / "s").resolve()),
        "CUMULO_PARAMS": json.dumps({"epochs": 3, "layers": [8, 4]}),
    }
