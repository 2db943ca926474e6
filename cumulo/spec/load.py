"""Load a project: YAML files and ``@function`` modules, checked, into a :class:`Project`.

Every mistake is collected (YAML syntax, each resource's own validation, the
decorated modules, and the checks across resources) and reported together as
one :class:`~cumulo.errors.SpecError`, each problem as ``file:path: message``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cumulo.errors import Problem, SpecError
from cumulo.spec.checks import check_project
from cumulo.spec.decorated import import_declared, project_modules
from cumulo.spec.documents import Document, read_documents, yaml_files
from cumulo.spec.models import API_VERSION, KINDS, EventBus, EventSource, Function, Trigger
from cumulo.spec.problems import Located, Origin, display_path
from cumulo.spec.project import Project, inline_trigger, inline_trigger_name

_KIND_LIST = ", ".join(KINDS)


def load_project(
    root: Path | str, *, modules: Sequence[str] = (), import_modules: bool = True
) -> Project:
    """The project in ``root`` (a directory, or one YAML file in the project's directory).

    A directory contributes its ``*.yaml`` / ``*.yml`` files (not recursive);
    the project directory's ``main.py`` and each of ``modules`` contribute the
    functions they declare with ``@function``. With ``import_modules=False``
    nothing of the project is imported (a repository that is not the user's
    own): only its YAML counts. Raises :class:`SpecError` listing every problem.
    """
    project, problems = _load(Path(root), modules, import_modules)
    if problems:
        raise SpecError(problems)
    return project


def validate_project(root: Path | str, modules: Sequence[str] = ()) -> list[Problem]:
    """Every problem of the project in ``root``; empty when it loads."""
    return _load(Path(root), modules, True)[1]


def _load(
    root: Path, modules: Sequence[str], import_modules: bool
) -> tuple[Project, list[Problem]]:
    importlib.invalidate_caches()  # see files written since the last import
    if not root.exists():
        return Project(root.absolute()), [Problem(display_path(root), "", "no such file or folder")]
    project_dir = (root if root.is_dir() else root.parent).absolute()
    files = yaml_files(root) if root.is_dir() else [root]
    if not files and not (import_modules and project_modules(project_dir, modules)):
        message = "no *.yaml or *.yml files, no main.py and no modules: nothing to load"
        if not import_modules:
            message = "no *.yaml or *.yml files (Python modules are not imported here)"
        return Project(project_dir), [Problem(display_path(root), "", message)]
    documents, problems = read_documents(files)
    located = [item for document in documents if (item := _parse(document, problems))]
    declared, import_problems = import_declared(project_dir, modules, enabled=import_modules)
    problems += import_problems
    located = list(_with_inline_triggers([*located, *declared], problems))
    problems += check_project(located, project_dir)
    return _build(project_dir, located), problems


def _parse(document: Document, problems: list[Problem]) -> Located | None:
    """One document as a resource; its problems go to ``problems``."""
    data = document.data
    if not isinstance(data, dict):
        kind = type(data).__name__
        message = f"a resource must be a mapping (apiVersion, kind, metadata, spec), not {kind}"
        problems.append(Problem(document.file, f"document[{document.index}]", message))
        return None
    origin = Origin(document.file, _prefix(data, document.index))
    if header_problems := _header_problems(data, origin):
        problems.extend(header_problems)
        return None
    try:
        return Located(KINDS[data["kind"]].model_validate(data), origin)
    except ValidationError as e:
        problems.extend(origin.problems(e))
        return None


def _prefix(data: dict[Any, Any], index: int) -> str:
    """``Kind/name`` when both are known, else ``document[index]``."""
    kind, metadata = data.get("kind"), data.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and kind in KINDS and isinstance(name, str) and name:
        return f"{kind}/{name}"
    return f"document[{index}]"


def _header_problems(data: dict[Any, Any], origin: Origin) -> list[Problem]:
    """What is wrong with ``apiVersion`` and ``kind`` (the rest is then not checked)."""
    problems = []
    version, kind = data.get("apiVersion"), data.get("kind")
    if version is None:
        problems.append(origin.problem("apiVersion", f"Field required (use '{API_VERSION}')"))
    elif version != API_VERSION:
        message = f"unsupported apiVersion '{version}' (use '{API_VERSION}')"
        problems.append(origin.problem("apiVersion", message))
    if kind is None:
        problems.append(origin.problem("kind", f"Field required (one of {_KIND_LIST})"))
    elif not isinstance(kind, str) or kind not in KINDS:
        problems.append(origin.problem("kind", f"unknown kind '{kind}' (one of {_KIND_LIST})"))
    return problems


def _with_inline_triggers(located: list[Located], problems: list[Problem]) -> Iterator[Located]:
    """Each resource, a function followed by its inline triggers as Trigger resources.

    A function declared twice is reported once, as a duplicate; the inline
    triggers of the second declaration are left out.
    """
    functions: set[str] = set()
    for item in located:
        yield item
        if isinstance(item.resource, Function) and item.resource.name not in functions:
            functions.add(item.resource.name)
            yield from _inline_triggers(item.resource, item.origin, problems)


def _inline_triggers(
    function: Function, origin: Origin, problems: list[Problem]
) -> Iterator[Located]:
    for index, binding in enumerate(function.spec.triggers):
        binding_origin = origin.child(f"spec.triggers[{index}]")
        try:
            yield Located(inline_trigger(function, index), binding_origin)
        except ValidationError:  # the made-up name is too long
            name = inline_trigger_name(function.name, index, binding.name)
            message = f"the default name '{name}' is too long; give this trigger a name"
            problems.append(binding_origin.problem("name", message))


def _build(project_dir: Path, located: Sequence[Located]) -> Project:
    """The project; of resources with the same kind and name, the first one counts."""
    by_kind: dict[type, dict[str, Any]] = {kind: {} for kind in KINDS.values()}
    for item in located:
        by_kind[type(item.resource)].setdefault(item.resource.name, item.resource)
    return Project(
        project_dir,
        functions=by_kind[Function],
        sources=by_kind[EventSource],
        buses=by_kind[EventBus],
        triggers=by_kind[Trigger],
    )
