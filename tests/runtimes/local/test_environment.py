"""A function's environment is built from its spec, never copied from the platform's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cumulo.runtimes.local.environment import function_environment
from cumulo.spec.models import Function

PLATFORM = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/home/cumulo",
    "LC_ALL": "C.UTF-8",
    "PYTHONPATH": "/opt/lib",
    "CUMULO_API_TOKEN": "api-token",
    "CUMULO_BUS_URL": "redis://127.0.0.1:6379",
    "GH_SECRET": "webhook-secret",
    "AWS_ACCESS_KEY_ID": "AKIA-platform",
    "DB_PASSWORD": "db-secret",
}


@pytest.fixture(autouse=True)
def platform_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PLATFORM.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MISSING_TOKEN", raising=False)


def function(**spec: object) -> Function:
    return Function.model_validate(
        {"metadata": {"name": "f"}, "spec": {"handler": "main:f", **spec}}
    )


def test_only_the_basics_and_the_worker_settings_without_a_declaration(tmp_path: Path) -> None:
    env = function_environment(function(params={"k": 1}), project=tmp_path, state=tmp_path / "s")

    assert {n: env[n] for n in ("PATH", "HOME", "LC_ALL", "PYTHONPATH")} == {
        n: PLATFORM[n] for n in ("PATH", "HOME", "LC_ALL", "PYTHONPATH")
    }
    assert env["CUMULO_FUNCTION"] == "f"
    assert json.loads(env["CUMULO_PARAMS"]) == {"k": 1}
    assert env["CUMULO_PROJECT_DIR"] == str(tmp_path.resolve())
    assert env["CUMULO_STATE_DIR"] == str((tmp_path / "s").resolve())
    for name in ("CUMULO_API_TOKEN", "CUMULO_BUS_URL", "GH_SECRET", "AWS_ACCESS_KEY_ID"):
        assert name not in env
    assert "DB_PASSWORD" not in env  # not named by this spec


def test_spec_env_and_the_named_secrets_are_added(tmp_path: Path) -> None:
    spec = {
        "env": {"GREETING": "hello", "PATH": "/opt/bin"},
        "secrets": [
            {"name": "db", "key": "password"},
            {"name": "aws", "env": "AWS_ACCESS_KEY_ID"},
            {"name": "missing", "key": "token"},
        ],
    }
    env = function_environment(function(**spec), project=tmp_path, state=tmp_path)

    assert env["GREETING"] == "hello"
    assert env["PATH"] == "/opt/bin"  # the spec wins over the basics
    assert env["DB_PASSWORD"] == "db-secret"
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA-platform"
    assert "MISSING_TOKEN" not in env  # declared but unset: left out
    assert "CUMULO_API_TOKEN" not in env
