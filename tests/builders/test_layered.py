"""The layered (``oci``) builder: reproducible layers, layer reuse, and an image that runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cumulo.builders.available import default_registry
from cumulo.builders.base import BuildOptions
from cumulo.builders.detect import detect
from cumulo.builders.layered import LayeredBuilder
from cumulo.builders.oci import build_layer, tree_entries
from cumulo.spec.load import load_project
from tests.builders.buildahrun import BuildahStore, get_when_up, stop
from tests.servers.broker import find_binary, free_port
from tests.servers.registry import Registry


def plan_of(project: Path):
    return detect(load_project(project).functions["hello"], project)


def skopeo(*args: str) -> dict:
    binary = find_binary("skopeo", "install-oci")
    done = subprocess.run([binary, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_layers_are_reproducible(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "b.py").write_text("y = 2\n")
    first = build_layer(tree_entries(tmp_path, "/app"))
    (tmp_path / "a.py").touch()  # a new mtime changes nothing
    assert build_layer(tree_entries(tmp_path, "/app")).descriptor == first.descriptor


def test_same_project_same_digest(project: Path, oci_registry: Registry, tmp_path: Path) -> None:
    image = f"{oci_registry.address}/shop/hello:repro"
    one = LayeredBuilder(BuildOptions(cache_dir=tmp_path / "cache-1")).build(
        plan_of(project), image
    )
    two = LayeredBuilder(BuildOptions(cache_dir=tmp_path / "cache-2")).build(
        plan_of(project), image
    )
    assert one.digest == two.digest and one.digest.startswith("sha256:")
    assert two.pushed == ()  # every blob was there already


def test_code_only_rebuild_pushes_only_the_app_layer(
    project: Path, oci_registry: Registry, tmp_path: Path
) -> None:
    builder = default_registry().create("auto", BuildOptions(cache_dir=tmp_path / "cache"))
    image = f"{oci_registry.address}/shop/hello:code"
    first = builder.build(plan_of(project), image)
    before = skopeo("inspect", "--tls-verify=false", f"docker://{image}")["Layers"]
    (project / "app.py").write_text((project / "app.py").read_text().replace("v1", "v2"))
    second = builder.build(plan_of(project), image)
    after = skopeo("inspect", "--tls-verify=false", f"docker://{image}")["Layers"]
    assert second.digest != first.digest
    assert after[:-1] == before[:-1] and after[-1] != before[-1]  # base + deps reused
    assert after[-1] in second.pushed and len(second.pushed) == 2  # app layer + config


def test_skopeo_sees_the_config(project: Path, oci_registry: Registry, tmp_path: Path) -> None:
    image = f"{oci_registry.address}/shop/hello:config"
    result = LayeredBuilder(BuildOptions(cache_dir=tmp_path / "c")).build(plan_of(project), image)
    info = skopeo("inspect", "--tls-verify=false", f"docker://{image}")
    assert info["Digest"] == result.digest and len(info["Layers"]) == 4  # 2 base + deps + app
    config = skopeo("inspect", "--config", "--tls-verify=false", f"docker://{image}")["config"]
    assert config["Entrypoint"][:4] == ["python3", "-m", "cumulo", "worker"]
    assert config["WorkingDir"] == "/app" and "8080/tcp" in config["ExposedPorts"]
    assert "PYTHONPATH=/opt/cumulo/site-packages" in config["Env"]
    assert any(e.startswith("PATH=") for e in config["Env"])  # the base's env is kept


def test_the_image_runs_the_worker(
    project: Path, oci_registry: Registry, buildah_store: BuildahStore, tmp_path: Path
) -> None:
    image = f"{oci_registry.address}/shop/hello:run"
    LayeredBuilder(BuildOptions(cache_dir=tmp_path / "cache")).build(plan_of(project), image)
    container = buildah_store.container(image)
    config = buildah_store.inspect(container)["OCIv1"]["config"]
    port, log = free_port(), tmp_path / "container.log"
    command = [*config["Entrypoint"], "--host", "127.0.0.1"]
    process = buildah_store.start(container, command, port, log)
    try:
        answer = get_when_up(f"http://127.0.0.1:{port}/", process, log)
    finally:
        stop(process)
    assert answer == "hello from a wheel (v1)"
