"""build_image: a git.push event becomes an image.built event with the image's digest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cumulo.builders.reference import ImageRef
from cumulo.builders.registry import RegistryClient
from cumulo.config import FunctionSettings
from cumulo.events.event import new_event
from cumulo.functions.build_image import run_build_image
from cumulo.functions.context import FunctionContext
from cumulo.functions.lineage import IMAGE_BUILT
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
        params={"registry": oci_registry.address, "cacheDir": str(tmp_path / "cache")},
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
