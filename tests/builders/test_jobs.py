"""Kaniko and buildpacks Jobs, checked against Kubernetes' own Job schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate

from cumulo.builders.buildpacks import buildpacks_job
from cumulo.builders.detect import BuildPlan
from cumulo.builders.jobs import Source
from cumulo.builders.kaniko import EXECUTOR, kaniko_job

SOURCE = Source("https://git.example.com/ml/shop.git", "0123456789abcdef")
IMAGE = "registry.example.com/ml/shop-hello:0123456789ab"


def plan(tmp_path: Path) -> BuildPlan:
    (tmp_path / "requirements.txt").write_text("numpy\n")
    return BuildPlan(
        function="hello", handler="app:hello", context=tmp_path, base_image="python:3.11-slim",
        kind="requirements", requirements=("-r", "requirements.txt"),
        inputs=(tmp_path / "requirements.txt",),
    )  # fmt: skip


def valid(job: dict[str, Any]) -> None:
    kubernetes_validate.validate(job, "1.30", strict=True)


def test_kaniko_job(tmp_path: Path) -> None:
    job = kaniko_job(plan(tmp_path), IMAGE, SOURCE, namespace="ml", docker_config_secret="regcred")
    valid(job)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == EXECUTOR and pod["restartPolicy"] == "Never"
    assert f"--destination={IMAGE}" in container["args"]
    assert "--context=dir:///workspace" in container["args"]
    assert "--cache=true" in container["args"]
    assert "--cache-repo=registry.example.com/ml/shop-hello/cache" in container["args"]
    script = pod["initContainers"][0]["command"][-1]
    assert "git clone" in script and "0123456789abcdef" in script and "base64 -d" in script
    assert {"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True} in container[
        "volumeMounts"
    ]


def test_buildpacks_job(tmp_path: Path) -> None:
    job = buildpacks_job(
        plan(tmp_path), IMAGE, SOURCE, builder="paketobuildpacks/builder-jammy-base"
    )
    valid(job)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["/cnb/lifecycle/creator"]
    assert container["args"][-1] == IMAGE and "-app=/workspace" in container["args"]
    assert pod["securityContext"]["runAsUser"] == 1000
    assert "Procfile" in pod["initContainers"][0]["command"][-1]
    assert job["metadata"]["name"].startswith("buildpacks-hello-")
