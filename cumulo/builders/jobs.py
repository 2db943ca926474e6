"""The shape both in-cluster builders share: a Kubernetes Job that fetches the source, then builds.

The source is a Git repository at a commit, cloned by an init container into an
``emptyDir`` mounted at ``/workspace``; registry credentials come from a Secret
of type ``kubernetes.io/dockerconfigjson`` when one is named.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from typing import Any

GIT_IMAGE = "alpine/git:2.45.2"
WORKSPACE = "/workspace"


@dataclass(frozen=True)
class Source:
    """Where the cluster gets the code: a clonable repository URL and a commit (or branch)."""

    repository: str
    revision: str = "HEAD"
    subdirectory: str = "."

    @property
    def path(self) -> str:
        return WORKSPACE if self.subdirectory in ("", ".") else f"{WORKSPACE}/{self.subdirectory}"


def job_name(kind: str, function: str, image: str) -> str:
    """A DNS-1123 name, stable for the same function and image."""
    suffix = hashlib.sha256(image.encode()).hexdigest()[:8]
    stem = re.sub(r"[^a-z0-9-]", "-", f"{kind}-{function}".lower()).strip("-")[:50]
    return f"{stem}-{suffix}"


def clone_container(source: Source, extra: str = "") -> dict[str, Any]:
    """The init container: clone, check out the revision, then ``extra`` shell lines."""
    script = (
        f"git clone --quiet {shlex.quote(source.repository)} {WORKSPACE} && "
        f"cd {WORKSPACE} && git checkout --quiet {shlex.quote(source.revision)}"
    )
    return {
        "name": "source",
        "image": GIT_IMAGE,
        "command": ["sh", "-c", script + (f" && {extra}" if extra else "")],
        "volumeMounts": [{"name": "workspace", "mountPath": WORKSPACE}],
    }


def build_job(
    name: str,
    *,
    function: str,
    builder: str,
    init: list[dict[str, Any]],
    container: dict[str, Any],
    volumes: list[dict[str, Any]],
    namespace: str | None = None,
    security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "cumulo", "dev.cumulo/function": function,
              "dev.cumulo/builder": builder}  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        metadata["namespace"] = namespace
    pod: dict[str, Any] = {"restartPolicy": "Never", "initContainers": init,
                           "containers": [container], "volumes": volumes}  # fmt: skip
    if security:
        pod["securityContext"] = security
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def volumes(docker_config_secret: str | None, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [{"name": "workspace", "emptyDir": {}}, *extra]
    if docker_config_secret:
        items = [{"key": ".dockerconfigjson", "path": "config.json"}]
        secret = {"secretName": docker_config_secret, "items": items}
        found.append({"name": "docker-config", "secret": secret})
    return found
