"""Build plans from a project's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.builders.detect import detect
from cumulo.errors import SpecError
from cumulo.spec.models import Function


def function(**build: object) -> Function:
    return Function.model_validate(
        {"metadata": {"name": "hello"}, "spec": {"handler": "main:hello", "build": build}}
    )


def test_requirements_file_and_the_local_files_it_names(tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"x")
    (tmp_path / "more.txt").write_text("requests==2.32.0\n")
    (tmp_path / "requirements.txt").write_text(
        "# deps\n./wheels/x-1.0-py3-none-any.whl\n-r more.txt\n"
    )
    plan = detect(function(), tmp_path)
    assert plan.kind == "requirements" and plan.requirements == ("-r", "requirements.txt")
    names = [p.relative_to(tmp_path).as_posix() for p in plan.inputs]
    assert names == ["requirements.txt", "wheels/x-1.0-py3-none-any.whl", "more.txt"]
    assert plan.entrypoint[:6] == ["python3", "-m", "cumulo", "worker", "--target", "main:hello"]
    assert "--source" in plan.entrypoint and "/app" in plan.entrypoint


def test_the_dependencies_key_follows_what_pip_reads(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("./pkg.whl\n")
    (tmp_path / "pkg.whl").write_bytes(b"1")
    first = detect(function(), tmp_path).dependencies_key()
    (tmp_path / "main.py").write_text("code changes do not matter")
    assert detect(function(), tmp_path).dependencies_key() == first
    (tmp_path / "pkg.whl").write_bytes(b"2")
    assert detect(function(), tmp_path).dependencies_key() != first


def test_pyproject_dependencies(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["numpy>=2"]\n')
    plan = detect(function(baseImage="registry.local/py:3.11"), tmp_path)
    assert (plan.kind, plan.requirements, plan.base_image) == (
        "pyproject",
        ("numpy>=2",),
        "registry.local/py:3.11",
    )


def test_no_dependencies(tmp_path: Path) -> None:
    assert detect(function(), tmp_path).kind == "none"


def test_mistakes_are_located_problems(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match=r"cumulo.yaml:Function/hello.spec.build.requirements: no file"
    ):
        detect(function(requirements="nope.txt"), tmp_path)
    with pytest.raises(SpecError, match=r"spec.build.context: no folder"):
        detect(function(context="missing"), tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        detect(function(), tmp_path)
