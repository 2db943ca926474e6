"""A clone's build stays inside it: its files, its wheels, named packages, known registries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cumulo.errors import CapabilityError
from cumulo.functions.clone_plans import ONLY_BINARY, clone_planner
from cumulo.spec.models import Function

REGISTRY = "127.0.0.1:5000"


def function(**build: str) -> Function:
    return Function.model_validate(
        {
            "apiVersion": "cumulo.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello"},
            "spec": {"handler": "app:hello", "build": build},
        }
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "wheels").mkdir(parents=True)
    (root / "wheels" / "greeting-1.0-py3-none-any.whl").write_bytes(b"PK")
    (root / "app.py").write_text("def hello(request):\n    return 'hi'\n")
    return root


def vet(clone: Path, requirements: str | None = None, **build: str):
    if requirements is not None:
        (clone / "requirements.txt").write_text(requirements)
    return clone_planner(clone, [REGISTRY])(function(**build), clone)


def test_named_packages_and_wheels_inside_the_clone_install_as_wheels_only(clone: Path):
    (clone / "more.txt").write_text("numpy>=1.26 --hash=sha256:00\n")
    plan = vet(
        clone,
        "flask>=3 ; python_version >= '3.8'\n./wheels/greeting-1.0-py3-none-any.whl\n-r more.txt\n",
    )
    assert plan.requirements == (ONLY_BINARY, "-r", "requirements.txt")


def test_a_pyproject_clone_installs_wheels_only(clone: Path):
    (clone / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["flask>=3"]\n')
    assert vet(clone).requirements == (ONLY_BINARY, "flask>=3")


@pytest.mark.parametrize(
    "requirements",
    [
        "--index-url http://127.0.0.1:1/simple\nflask\n",
        "-i http://127.0.0.1:1/simple\n",
        "--extra-index-url=http://127.0.0.1:1/simple\n",
        "-f http://127.0.0.1:1/links\n",
        "-e .\n",
        "--no-binary=:all:\n",
        "git+https://git.example.com/evil.git\n",
        "evil @ https://127.0.0.1:1/evil.tar.gz\n",
        "evil@file:///etc/passwd\n",
        ".\n",  # the clone itself: a source package whose build script would run
        "./wheels\n",
        "flask --global-option=--evil\n",
        "-r /etc/passwd\n",
        "-r ../outside.txt\n",
    ],
)
def test_requirements_that_reach_outside_or_build_from_source_are_refused(
    clone: Path, requirements: str
):
    (clone.parent / "outside.txt").write_text("flask\n")
    with pytest.raises(CapabilityError, match="Function/hello") as refused:
        vet(clone, requirements)
    assert "a cloned repository builds from its own files" in str(refused.value)
    assert "127.0.0.1" not in str(refused.value)  # the rule, not the line


def test_a_pyproject_direct_reference_is_refused(clone: Path):
    (clone / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["evil @ http://127.0.0.1:1/evil.whl"]\n'
    )
    with pytest.raises(CapabilityError, match="URLs and direct references are not allowed"):
        vet(clone)


def test_a_build_context_outside_the_clone_is_refused(clone: Path):
    (clone.parent / "platform").mkdir()
    with pytest.raises(CapabilityError, match=r"spec.build.context: outside the repository"):
        vet(clone, context="../platform")


def test_a_requirements_file_linked_outside_the_clone_is_refused(clone: Path):
    (clone.parent / "secret.txt").write_text("flask\n")
    os.symlink(clone.parent / "secret.txt", clone / "requirements.txt")
    with pytest.raises(CapabilityError, match="outside the repository"):
        vet(clone)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("python:3.11-slim", True),
        ("docker.io/library/python:3.11", True),
        (f"{REGISTRY}/base/python:3.11", True),
        ("127.0.0.1:9999/internal/admin:latest", False),
        ("registry.internal.example/base:1", False),
    ],
)
def test_a_clones_base_image_comes_from_docker_hub_or_a_registry_the_spec_names(
    clone: Path, image: str, allowed: bool
):
    if allowed:
        assert vet(clone, baseImage=image).base_image == image
    else:
        with pytest.raises(CapabilityError, match=r"params\.baseRegistries"):
            vet(clone, baseImage=image)
