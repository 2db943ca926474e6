"""The Containerfile of a build plan, shared by the buildah and Kaniko builders.

Dependencies are installed before the code is copied, from only the files pip
reads, so a tool with a layer cache rebuilds just the last ``COPY`` after a
code-only change.
"""

from __future__ import annotations

import json

from cumulo.builders.detect import APP_DIR, DEPS_DIR, PORT, BuildPlan
from cumulo.builders.layered import SKIP

PIP = ["python3", "-m", "pip", "install", "--no-cache-dir", "--no-compile",
       "--disable-pip-version-check"]  # fmt: skip


def render_containerfile(plan: BuildPlan) -> str:
    lines = [f"FROM {plan.base_image}", f"WORKDIR {APP_DIR}"]
    for path in plan.inputs:
        relative = path.relative_to(plan.context).as_posix()
        lines.append(f"COPY {json.dumps([relative, f'{APP_DIR}/{relative}'])}")
    if plan.kind != "none" and plan.requirements:
        command = [*PIP, "--target", DEPS_DIR, *plan.requirements]
        lines.append(f"RUN {json.dumps(command)}")  # exec form: the base needs no shell
    lines.append(f"COPY . {APP_DIR}")
    env = " ".join(f"{key}={json.dumps(value)}" for key, value in plan.image_env.items())
    lines += [
        f"ENV {env}",
        f"EXPOSE {PORT}",
        f"LABEL dev.cumulo.function={json.dumps(plan.function)}",
        f"ENTRYPOINT {json.dumps(plan.entrypoint)}",
    ]
    return "\n".join(lines) + "\n"


def render_ignorefile() -> str:
    """What ``COPY .`` leaves out (the layered builder's list)."""
    return "\n".join(sorted(f"**/{name}" for name in SKIP)) + "\n"
