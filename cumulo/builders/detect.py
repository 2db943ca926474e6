"""A function's build plan, read from its project: what to install and how to start.

The dependencies come from ``spec.build.requirements`` (a requirements file),
else ``requirements.txt``, else ``pyproject.toml``'s ``[project].dependencies``,
else none. Local paths a requirements file names (``./wheels/x.whl``, ``-r
more.txt``) are inputs of the dependency step too. The image runs the
function with ``python3 -m cumulo worker --target HANDLER --source /app ...
--host 0.0.0.0`` (the worker's own default is loopback only): the base image or
the requirements must provide ``cumulo``.

Mistakes are :class:`~cumulo.errors.SpecError` problems located as
``file:path: message``.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cumulo.errors import Problem, SpecError
from cumulo.spec.models import Function

APP_DIR = "/app"
DEPS_DIR = "/opt/cumulo/site-packages"
PORT = 8080
DependencyKind = Literal["requirements", "pyproject", "none"]


@dataclass(frozen=True)
class BuildPlan:
    """Everything a builder needs, whichever builder it is."""

    function: str
    handler: str
    context: Path
    base_image: str
    kind: DependencyKind = "none"
    requirements: tuple[str, ...] = ()  # requirement lines (pyproject) or ("-r", file)
    inputs: tuple[Path, ...] = ()  # files the dependency step reads, inside the context
    signature: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def entrypoint(self) -> list[str]:
        command = ["python3", "-m", "cumulo", "worker", "--target", self.handler]
        command += ["--source", APP_DIR, "--name", self.function]
        command += ["--signature-type", self.signature] if self.signature else []
        return [*command, "--host", "0.0.0.0"]  # a container listens on all its interfaces

    @property
    def image_env(self) -> dict[str, str]:
        """The environment the image sets (the spec's own env is set at deploy time)."""
        base = {"PYTHONPATH": DEPS_DIR, "PYTHONUNBUFFERED": "1", "PORT": str(PORT)}
        return {**base, "CUMULO_FUNCTION": self.function, **self.env}

    def dependencies_key(self) -> str:
        """A hash of everything the dependency step reads: same key, same layer."""
        digest = hashlib.sha256("\n".join(self.requirements).encode())
        for path in self.inputs:
            digest.update(b"\0" + path.relative_to(self.context).as_posix().encode() + b"\0")
            digest.update(_content(path))
        return digest.hexdigest()


def detect(function: Function, project_dir: Path, file: str = "cumulo.yaml") -> BuildPlan:
    """The build plan of ``function`` in the project at ``project_dir``."""
    build = function.spec.build
    where = f"Function/{function.name}.spec.build"
    context = (project_dir / build.context).resolve()
    if not context.is_dir():
        raise SpecError([Problem(file, f"{where}.context", f"no folder {context}")])
    kind, requirements, inputs = dependencies(context, build.requirements, file, where)
    return BuildPlan(
        function=function.name,
        handler=function.spec.handler,
        context=context,
        base_image=build.base_image,
        kind=kind,
        requirements=requirements,
        inputs=inputs,
        signature=function.spec.signature,
    )


def dependencies(
    context: Path, declared: str | None, file: str, where: str
) -> tuple[DependencyKind, tuple[str, ...], tuple[Path, ...]]:
    """What to install: a requirements file with its local inputs, pyproject's list, or nothing."""
    if declared is not None:
        path = context / declared
        if not path.is_file():
            raise SpecError([Problem(file, f"{where}.requirements", f"no file {path}")])
        return "requirements", ("-r", declared), tuple(requirement_inputs(context, path))
    if (context / "requirements.txt").is_file():
        path = context / "requirements.txt"
        return "requirements", ("-r", "requirements.txt"), tuple(requirement_inputs(context, path))
    if (context / "pyproject.toml").is_file():
        return "pyproject", pyproject_dependencies(context / "pyproject.toml"), ()
    return "none", (), ()


def requirement_inputs(context: Path, requirements: Path) -> list[Path]:
    """The requirements file and every local file or folder it names, in order, once each."""
    found = [requirements]
    for line in requirements.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] in ("-r", "--requirement", "-c", "--constraint") and len(words) > 1:
            nested = (requirements.parent / words[1]).resolve()
            found += [p for p in requirement_inputs(context, nested) if p not in found]
            continue
        candidate = (context / words[0].removeprefix("file:")).resolve()
        if words[0].startswith((".", "/", "file:")) and candidate.exists():
            found += [p for p in _files(candidate) if p not in found]
    return found


def pyproject_dependencies(path: Path) -> tuple[str, ...]:
    """``[project].dependencies`` of a pyproject.toml (a problem when it cannot be read)."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SpecError([Problem(str(path), "", f"not valid TOML: {e}")]) from e
    deps = data.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise SpecError([Problem(str(path), "project.dependencies", "must be a list of strings")])
    return tuple(deps)


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _content(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()
