"""The buildah builder end to end: Containerfile, build with chroot isolation, push."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cumulo.builders.available import default_registry
from cumulo.builders.base import BuildOptions
from cumulo.builders.containerfile import render_containerfile
from cumulo.builders.detect import detect
from cumulo.spec.load import load_project
from tests.servers.broker import find_binary
from tests.servers.registry import Registry


def test_containerfile_installs_dependencies_before_the_code(project: Path) -> None:
    plan = detect(load_project(project).functions["hello"], project)
    lines = render_containerfile(plan).splitlines()
    assert lines[0].startswith("FROM ") and lines[1] == "WORKDIR /app"
    run = next(i for i, line in enumerate(lines) if line.startswith("RUN "))
    assert lines.index("COPY . /app") > run
    assert '"--target", "/opt/cumulo/site-packages", "-r", "requirements.txt"]' in lines[run]
    assert lines[-1].startswith('ENTRYPOINT ["python3", "-m", "cumulo", "worker"')


def test_buildah_builds_and_pushes(project: Path, oci_registry: Registry, tmp_path: Path) -> None:
    find_binary("buildah", "install-oci")
    builder = default_registry().create("buildah", BuildOptions(cache_dir=tmp_path / "cache"))
    plan = detect(load_project(project).functions["hello"], project)
    image = f"{oci_registry.address}/shop/hello-buildah:v1"
    result = builder.build(plan, image)
    skopeo = find_binary("skopeo", "install-oci")
    done = subprocess.run(
        [skopeo, "inspect", "--config", "--tls-verify=false", f"docker://{image}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    config = json.loads(done.stdout)["config"]
    assert result.digest.startswith("sha256:")
    assert config["Entrypoint"][:4] == ["python3", "-m", "cumulo", "worker"]
    assert "PYTHONPATH=/opt/cumulo/site-packages" in config["Env"]
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{image}"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert "sha256:" + __import__("hashlib").sha256(raw).hexdigest() == result.digest
