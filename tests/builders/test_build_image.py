"""build_image: a git.push event becomes an image.built event with the image's digest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cumulo.builders.reference import ImageRef
from cumulo.builders.registry import RegistryClient
from cumulo.config import FunctionSettings
from cumulo.errors import CapabilityError, PermanentError
from cumulo.events.event import Event, new_event
from cumulo.events.lineage import IMAGE_BUILT
from cumulo.functions.build_image import run_build_image
from cumulo.functions.context import FunctionContext
from tests.servers.registry import Registry


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def commit_project(project: Path) -> str:
    git("init", "--quiet", "-b", "main", cwd=project)
    git("add", "-A", cwd=project)
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    git(*identity, "commit", "--quiet", "-m", "first", cwd=project)
    return git("rev-parse", "HEAD", cwd=project)


def test_git_push_builds_and_announces_the_image(
    project: Path, oci_registry: Registry, tmp_path: Path
) -> None:
    commit = commit_project(project)
    settings = FunctionSettings(
        function="build-image", state_dir=tmp_path / "state",
        params={"registry": oci_registry.address, "cacheDir": str(tmp_path / "cache"),
                "repositories": [str(project)]},
    )  # fmt: skip
    data = {"repository": str(project), "branch": "main", "commit": commit}
    push = new_event("dev.cumulo.git.push", "https://git.example.com/shop", data)
    shutil.rmtree(project / "wheels")  # the clone, not the working folder, is built
    (project / "requirements.txt").unlink()
    (event,) = run_build_image(FunctionContext(settings), push)
    assert event.type == IMAGE_BUILT and event.data["function"] == "hello"
    assert event.data["image"] == f"{oci_registry.address}/shop-hello:{commit[:12]}"
    digest = RegistryClient(oci_registry.address).inspect(ImageRef.parse(event.data["image"]))
    assert event.data["digest"] == digest
    lineage = event.data["lineage"]
    assert lineage["gitCommit"] == commit and lineage["imageDigest"] == digest
    assert lineage["triggerEvent"] == push.id


HOSTILE_MAIN = """import pathlib

pathlib.Path({marker!r}).write_text("main.py ran")

import cumulo


@cumulo.function
def python_only(request):
    return "declared in Python alone"
"""


def hostile_repository(project: Path, marker: Path) -> str:
    """The sample project with a main.py that leaves ``marker`` when imported; its commit."""
    (project / "main.py").write_text(HOSTILE_MAIN.format(marker=str(marker)))
    return commit_project(project)


def build_settings(tmp_path: Path, registry: str, **params: object) -> FunctionSettings:
    return FunctionSettings(
        function="build-image", state_dir=tmp_path / "state",
        params={"registry": registry, "cacheDir": str(tmp_path / "cache"), **params},
    )  # fmt: skip


def push_of(project: Path, commit: str, **params: object) -> Event:
    data = {"repository": str(project), "branch": "main", "commit": commit}
    return new_event(
        "dev.cumulo.git.push", "/tests", {**data, **({"params": params} if params else {})}
    )


def test_a_repository_the_spec_does_not_list_is_never_cloned_or_imported(
    project: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    commit = hostile_repository(project, marker)
    ctx = FunctionContext(build_settings(tmp_path, "127.0.0.1:1"))
    with pytest.raises(
        CapabilityError, match=r"data\.repository: not allow-listed; build_image clones only"
    ):
        run_build_image(ctx, push_of(project, commit))
    assert not marker.exists() and not (tmp_path / "state" / "builds").exists()


def test_an_event_cannot_name_the_clone_url_itself(project: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    commit = hostile_repository(project, marker)
    ctx = FunctionContext(build_settings(tmp_path, "127.0.0.1:1", repositories=["/srv/ok.git"]))
    with pytest.raises(
        CapabilityError, match=r"data\.params\.cloneUrl: set by the function's spec only"
    ):
        run_build_image(ctx, push_of(project, commit, cloneUrl=str(project)))
    assert not marker.exists()


def test_an_allowed_clone_builds_from_its_yaml_without_importing_it(
    project: Path, oci_registry: Registry, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    commit = hostile_repository(project, marker)
    settings = build_settings(tmp_path, oci_registry.address, repositories=[str(project)])
    (event,) = run_build_image(FunctionContext(settings), push_of(project, commit))
    assert event.data["function"] == "hello" and event.data["digest"].startswith("sha256:")
    assert not marker.exists()

    asked = push_of(project, commit, functions=["python-only"])
    with pytest.raises(PermanentError, match=r"declare them in cumulo\.yaml") as refused:
        run_build_image(FunctionContext(settings), asked)
    assert str(tmp_path) not in str(refused.value)  # the clone's folder is the platform's
    assert not marker.exists()
