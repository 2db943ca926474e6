"""What of a cloned repository ``build_image`` builds: its own files, wheels and named packages.

A clone is built from its YAML specs and its files; nothing of it is imported
or run in the platform's processes. Its build plan
(:func:`~cumulo.builders.detect.detect`) must stay inside the clone:

- ``spec.build.context`` and every file the dependency step reads resolve
  inside the clone (symlinks are checked out as plain files anyway);
- requirement lines name packages (``flask>=3``) or wheels inside the clone
  (``./wheels/x.whl``), and ``-r`` / ``-c`` name files inside it: no other pip
  option (``--index-url``, ``-e``, ``--find-links``), no URL, no direct
  reference (``name @ url``);
- pip installs wheels only (``--only-binary=:all:``): no source package's build
  script runs;
- the base image comes from Docker Hub or a registry the spec names
  (``params.registry``, ``params.baseRegistries``).

Each refusal is a :class:`~cumulo.errors.CapabilityError` naming the function
and the rule, never a line of the clone's files. The checks run before
detection reads a file, so nothing outside the clone is ever read.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from cumulo.builders.detect import BuildPlan, detect
from cumulo.builders.reference import DOCKER_HUB, ImageRef
from cumulo.errors import CapabilityError, PermanentError
from cumulo.spec.models import Function

ONLY_BINARY: Final = "--only-binary=:all:"
NESTED: Final = ("-r", "--requirement", "-c", "--constraint")
PER_LINE_OPTIONS: Final = ("--hash",)
HUB_NAMES: Final = (DOCKER_HUB, "docker.io", "index.docker.io")
RULE: Final = "a cloned repository builds from its own files"

Planner = Callable[[Function, Path], BuildPlan]


def clone_planner(clone: Path, registries: Sequence[str]) -> Planner:
    """Plans for the functions of ``clone``: checked before and after detection, wheels only.

    The spec's paths and requirement files are checked before
    :func:`~cumulo.builders.detect.detect` reads them, so nothing outside the
    clone is ever read.
    """
    root = Path(os.path.realpath(clone))

    def plan(function: Function, project_dir: Path) -> BuildPlan:
        where = f"Function/{function.name}"
        build = function.spec.build
        context = _inside(root, project_dir / build.context, f"{where}.spec.build.context")
        _check_base_image(build.base_image, registries, where)
        requirements = context / (build.requirements or "requirements.txt")
        if requirements.is_file() or requirements.is_symlink():
            _check_requirements(root, requirements, where)
        found = detect(function, project_dir)
        for path in found.inputs:
            _inside(root, path, f"{where}: a file its requirements name")
        for line in found.requirements if found.kind == "pyproject" else ():
            _check_specifier(line.split(), f"{where}: pyproject.toml")
        if found.kind == "none":
            return found
        return dataclasses.replace(found, requirements=(ONLY_BINARY, *found.requirements))

    return plan


def _inside(root: Path, path: Path, what: str) -> Path:
    resolved = Path(os.path.realpath(path))
    if not resolved.is_relative_to(root):
        raise CapabilityError(f"{what}: outside the repository; {RULE}")
    return resolved


def _check_base_image(image: str, registries: Sequence[str], where: str) -> None:
    try:
        registry = ImageRef.parse(image).registry
    except ValueError as e:
        raise CapabilityError(f"{where}.spec.build.baseImage: not an image reference") from e
    if registry not in (*HUB_NAMES, *registries):
        raise CapabilityError(
            f"{where}.spec.build.baseImage: a cloned repository's base image comes from "
            "Docker Hub or a registry the spec names (params.registry, params.baseRegistries)"
        )


def _check_requirements(root: Path, file: Path, where: str) -> None:
    for name, number, words in _requirement_lines(root, file, where, set()):
        here = f"{where}: {name} line {number}"
        if words[0].startswith((".", "/", "file:")):
            path = _inside(root, file.parent / words[0].removeprefix("file:"), here)
            if path.suffix != ".whl" or not path.is_file():
                raise CapabilityError(f"{here}: a local requirement must be a wheel; {RULE}")
            _check_options(words[1:], here)
        else:
            _check_specifier(words, here)


def _requirement_lines(
    root: Path, file: Path, where: str, seen: set[Path]
) -> Iterator[tuple[str, int, list[str]]]:
    """(file, line number, words) of each requirement, following ``-r`` / ``-c`` files."""
    path = _inside(root, file, f"{where}: a requirements file")
    name = path.relative_to(root).as_posix()
    if not path.is_file():
        raise PermanentError(f"{where}: no requirements file {name} in the repository")
    if path in seen:
        return
    seen.add(path)
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        words = line.split(" #", 1)[0].split() if not line.lstrip().startswith("#") else []
        if not words:
            continue
        if words[0] in NESTED and len(words) == 2:
            yield from _requirement_lines(root, path.parent / words[1], where, seen)
        elif words[0].startswith("-"):
            option = words[0].split("=", 1)[0][:40]
            message = f"{name} line {number}: pip option {option!r} is not allowed; {RULE}"
            raise CapabilityError(f"{where}: {message}")
        else:
            yield name, number, words


def _check_specifier(words: list[str], here: str) -> None:
    """A package by name and version, without a URL or a direct reference."""
    if any("://" in word or "@" in word for word in words):
        raise CapabilityError(f"{here}: URLs and direct references are not allowed; {RULE}")
    _check_options(words[1:], here)


def _check_options(words: list[str], here: str) -> None:
    for word in words:
        if word.startswith("-") and not word.startswith(PER_LINE_OPTIONS):
            raise CapabilityError(f"{here}: only --hash may follow a requirement; {RULE}")
