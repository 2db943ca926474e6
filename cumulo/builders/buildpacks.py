"""Cloud Native Buildpacks: the Kubernetes Job that runs the lifecycle's ``creator``.

The builder image (Paketo's by default) carries the buildpacks and the
lifecycle; ``/cnb/lifecycle/creator`` detects, builds, exports and pushes the
app image in one step. The init container clones the source and hands the
workspace to the builder's user (CNB builders run as 1000:1000 by convention)
and writes a ``Procfile`` that starts the function with ``cumulo worker``
unless the project has one.
"""

from __future__ import annotations

import shlex
from typing import Any

from cumulo.builders.detect import BuildPlan
from cumulo.builders.jobs import WORKSPACE, Source, build_job, clone_container, job_name, volumes
from cumulo.builders.reference import ImageRef

BUILDER = "paketobuildpacks/builder-jammy-base:latest"
PLATFORM_API = "0.12"
CNB_USER, CNB_GROUP = 1000, 1000


def buildpacks_job(
    plan: BuildPlan,
    image: str,
    source: Source,
    *,
    builder: str = BUILDER,
    namespace: str | None = None,
    docker_config_secret: str | None = None,
) -> dict[str, Any]:
    """The Job (a dict) that builds ``plan`` into ``image`` with ``builder``."""
    ref = ImageRef.parse(image)
    procfile = "web: " + shlex.join(plan.entrypoint).replace("/app", source.path)
    prepare = (
        f"cd {shlex.quote(source.path)} && ( [ -f Procfile ] || echo {shlex.quote(procfile)} "
        f"> Procfile ) && chown -R {CNB_USER}:{CNB_GROUP} {WORKSPACE}"
    )
    args = [
        f"-app={source.path}",
        "-cache-dir=/cache",
        f"-previous-image={ref}",
        "-process-type=web",
        str(ref),
    ]
    env = [{"name": "CNB_PLATFORM_API", "value": PLATFORM_API}]
    env += [{"name": "BPE_DEFAULT_" + key, "value": value} for key, value in plan.image_env.items()
            if key != "PYTHONPATH"]  # fmt: skip
    mounts: list[dict[str, Any]] = [
        {"name": "workspace", "mountPath": WORKSPACE},
        {"name": "cache", "mountPath": "/cache"},
    ]
    if docker_config_secret:
        env.append({"name": "DOCKER_CONFIG", "value": "/docker"})
        mounts.append({"name": "docker-config", "mountPath": "/docker", "readOnly": True})
    container = {"name": "creator", "image": builder, "command": ["/cnb/lifecycle/creator"],
                 "args": args, "env": env, "volumeMounts": mounts}  # fmt: skip
    init = clone_container(source, prepare)
    init["securityContext"] = {"runAsUser": 0}
    return build_job(
        job_name("buildpacks", plan.function, str(ref)),
        function=plan.function,
        builder="buildpacks",
        init=[init],
        container=container,
        volumes=volumes(docker_config_secret, {"name": "cache", "emptyDir": {}}),
        namespace=namespace,
        security={"runAsUser": CNB_USER, "runAsGroup": CNB_GROUP, "fsGroup": CNB_GROUP},
    )
