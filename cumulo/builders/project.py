"""Build a project's functions: the step ``cumulo build`` and the ``build_image`` function share.

An image is named ``REGISTRY/PROJECT-FUNCTION:TAG``, the name ``cumulo manifests``
gives it (``PROJECT``: the project folder's name as a DNS label), unless a
``prefix`` replaces ``PROJECT-``.

A folder that is not the user's own (``build_image``'s clone of a repository)
is built with ``import_modules=False``: its functions come from its YAML
alone, and its ``planner`` may refuse or adjust each plan (the default,
:func:`~cumulo.builders.detect.detect`, takes the project as it is).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cumulo.builders.available import default_registry
from cumulo.builders.base import BuilderRegistry, BuildOptions, BuildResult
from cumulo.builders.detect import BuildPlan, detect
from cumulo.errors import BuildError, Problem, SpecError
from cumulo.spec.load import load_project
from cumulo.spec.models import Function
from cumulo.spec.project import Project


@dataclass(frozen=True)
class BuildRequest:
    registry: str
    builder: str | None = None  # None: each function's spec.build.builder
    tag: str = "latest"
    prefix: str | None = None  # default: "PROJECT-"
    base_image: str | None = None  # None: each function's spec.build.baseImage
    options: BuildOptions = field(default_factory=BuildOptions)
    import_modules: bool = True  # False: nothing of the folder is imported (a clone)
    planner: Callable[[Function, Path], BuildPlan] = detect  # a function's plan, in a project


def image_name(request: BuildRequest, function: str, project_dir: Path) -> str:
    prefix = request.prefix if request.prefix is not None else f"{project_label(project_dir)}-"
    return f"{request.registry.rstrip('/')}/{prefix}{function}:{request.tag}"


def project_label(project_dir: Path) -> str:
    """The project folder's name as a DNS-1123 label (as ``cumulo manifests`` names it)."""
    label = re.sub(r"[^a-z0-9]+", "-", project_dir.resolve().name.lower()).strip("-")[:63]
    return label.strip("-") or "cumulo"


def build_functions(
    project_dir: Path,
    names: Sequence[str],
    request: BuildRequest,
    builders: BuilderRegistry | None = None,
) -> list[tuple[str, BuildResult]]:
    """Build ``names`` (every function when empty) of the project; one result per function."""
    project = load_project(project_dir, import_modules=request.import_modules)
    chosen = select(project, names, yaml_only=not request.import_modules)
    builders = builders or default_registry()
    results = []
    for name in chosen:
        function = project.functions[name]
        builder_name = request.builder or function.spec.build.builder
        if builder_name in ("kaniko", "buildpacks"):
            raise BuildError(f"{name}: the {builder_name} builder runs in a cluster, not here")
        builder = builders.create(builder_name, request.options)
        plan = request.planner(function, project.root)
        if request.base_image is not None:
            plan = dataclasses.replace(plan, base_image=request.base_image)
        results.append((name, builder.build(plan, image_name(request, name, project.root))))
    return results


def select(project: Project, names: Sequence[str], *, yaml_only: bool = False) -> list[str]:
    """The functions asked for, all of them when none are named; unknown names are problems.

    With ``yaml_only`` (nothing was imported) a miss says to declare the function in YAML.
    """
    unknown = [n for n in names if n not in project.functions]
    if not unknown and (names or project.functions or not yaml_only):
        return list(names) or sorted(project.functions)
    known = ", ".join(sorted(project.functions)) or "none"
    hint = f" in its YAML; {YAML_ONLY}" if yaml_only else ""
    problems = [
        Problem("cumulo build", n, f"no function '{n}'{hint} (known: {known})") for n in unknown
    ]
    raise SpecError(problems or [Problem("cumulo build", "", f"no functions{hint}")])


YAML_ONLY = (
    "a repository that is not the project's own is never imported, so functions declared "
    "with @function in Python are not built from it: declare them in cumulo.yaml"
)
