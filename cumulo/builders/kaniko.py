"""Kaniko: the Kubernetes Job that builds a function's image in the cluster.

The init container clones the source and writes the generated Containerfile
(:mod:`.containerfile`) next to it; ``gcr.io/kaniko-project/executor`` builds
and pushes, caching layers in ``<image repository>/cache``. The image digest
ends up in the container's termination message (``--digest-file``).
"""

from __future__ import annotations

import base64
from typing import Any

from cumulo.builders.containerfile import render_containerfile
from cumulo.builders.detect import BuildPlan
from cumulo.builders.jobs import WORKSPACE, Source, build_job, clone_container, job_name, volumes
from cumulo.builders.reference import ImageRef

EXECUTOR = "gcr.io/kaniko-project/executor:v1.23.2"


def kaniko_job(
    plan: BuildPlan,
    image: str,
    source: Source,
    *,
    namespace: str | None = None,
    docker_config_secret: str | None = None,
    cache: bool = True,
    insecure: bool = False,
) -> dict[str, Any]:
    """The Job (a dict, ready for the API or YAML) that builds ``plan`` into ``image``."""
    ref = ImageRef.parse(image)
    containerfile = base64.b64encode(render_containerfile(plan).encode()).decode()
    write = f"echo {containerfile} | base64 -d > {WORKSPACE}/.cumulo.Containerfile"
    args = [
        f"--context=dir://{source.path}",
        f"--dockerfile={WORKSPACE}/.cumulo.Containerfile",
        f"--destination={ref}",
        "--digest-file=/dev/termination-log",
        "--reproducible",
    ]
    if cache:
        args += ["--cache=true", f"--cache-repo={ref.registry}/{ref.repository}/cache"]
    if insecure:
        args += ["--insecure", "--insecure-pull", "--skip-tls-verify"]
    mounts: list[dict[str, Any]] = [{"name": "workspace", "mountPath": WORKSPACE}]
    if docker_config_secret:
        mounts.append({"name": "docker-config", "mountPath": "/kaniko/.docker", "readOnly": True})
    container = {"name": "kaniko", "image": EXECUTOR, "args": args, "volumeMounts": mounts}
    return build_job(
        job_name("kaniko", plan.function, str(ref)),
        function=plan.function,
        builder="kaniko",
        init=[clone_container(source, write)],
        container=container,
        volumes=volumes(docker_config_secret),
        namespace=namespace,
    )
