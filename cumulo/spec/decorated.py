"""The decorator route: import a project's modules and collect their ``@function``\\s.

Modules are imported with the project root first on ``sys.path`` while a fresh
:class:`~cumulo.spec.registry.Registry` is the default. Loading leaves the
interpreter as it found it: ``sys.path`` is restored, and the project's own
modules are taken out of ``sys.modules`` again (a module of the same name
imported before is put back), so the next load imports them afresh.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from pydantic import ValidationError

from cumulo.errors import Problem
from cumulo.spec.problems import (
    Located,
    display_path,
    error_message,
    format_location,
    join_path,
)
from cumulo.spec.registry import Registry, resolve_declarations, use_registry

DEFAULT_MODULE = "main"  # functions-framework's default source file, main.py
_IMPORT_LOCK = threading.RLock()


def project_modules(project_dir: Path, modules: Sequence[str]) -> list[str]:
    """``main`` when ``main.py`` exists, then ``modules``, without repeats."""
    names = [DEFAULT_MODULE] if (project_dir / f"{DEFAULT_MODULE}.py").is_file() else []
    return list(dict.fromkeys([*names, *modules]))


def import_declared(
    project_dir: Path, modules: Sequence[str], *, enabled: bool = True
) -> tuple[list[Located], list[Problem]]:
    """Import the project's modules; the functions they declare, and every problem.

    ``enabled=False`` imports nothing and declares nothing: for a folder whose
    code must not run in this process (a cloned repository).
    """
    if not enabled:
        return [], []
    registry = Registry()
    problems: list[Problem] = []
    with use_registry(registry), _fresh_imports(project_dir):
        for name in project_modules(project_dir, modules):
            problems.extend(_import(name, project_dir))
    located, invalid = resolve_declarations(registry.declarations)
    return located, problems + invalid


@contextmanager
def _fresh_imports(project_dir: Path) -> Iterator[None]:
    """Put the project first on ``sys.path``; afterwards, forget the project's modules.

    ``sys.path`` and ``sys.modules`` belong to the whole process, so loads
    from several threads take turns.
    """
    with _IMPORT_LOCK:
        before = dict(sys.modules)
        entry = str(project_dir)
        sys.path.insert(0, entry)
        try:
            yield
        finally:
            _forget_project_modules(before, project_dir)
            sys.path.remove(entry)


def _forget_project_modules(before: dict[str, ModuleType], project_dir: Path) -> None:
    """Drop the project modules imported since ``before``; put back what they replaced."""
    for name, module in list(sys.modules.items()):
        if before.get(name) is not module and is_project_module(name, module, project_dir):
            del sys.modules[name]
    sys.modules.update({k: v for k, v in before.items() if k not in sys.modules})


def is_project_module(name: str, module: ModuleType | None, project_dir: Path) -> bool:
    """Whether ``module`` was found in ``project_dir`` itself.

    ``main.py`` or ``pipeline/steps.py`` are; a package from a virtual
    environment inside the project (``.venv/lib/.../flask``) is not.
    """
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return False
    try:
        first = Path(os.path.abspath(file)).relative_to(project_dir.absolute()).parts[0]
    except ValueError:
        return False
    return first.split(".")[0] == name.split(".")[0]


def _import(name: str, project_dir: Path) -> list[Problem]:
    """Import ``name`` afresh; what went wrong, as problems."""
    sys.modules.pop(name, None)
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(f"{e.name}.")):
            return [Problem(display_path(project_dir), "", f"cannot find module '{name}'")]
        return [_raised_problem(name, e, project_dir)]
    except SyntaxError as e:
        line = f"{e.lineno}" if e.lineno else ""
        return [Problem(display_path(e.filename or name), line, f"SyntaxError: {e.msg}")]
    except ValidationError as e:
        return _validation_problems(name, e, project_dir)
    except Exception as e:
        return [_raised_problem(name, e, project_dir)]
    return []


def _raised_problem(name: str, error: BaseException, project_dir: Path) -> Problem:
    file, line = _raised_at(error, project_dir)
    message = f"cannot import module '{name}': {type(error).__name__}: {error}"
    return Problem(file or name, line, message)


def _validation_problems(name: str, error: ValidationError, project_dir: Path) -> list[Problem]:
    """A model built at import time (say ``on(bus="Bad")``) was invalid."""
    file, line = _raised_at(error, project_dir)
    return [
        Problem(
            file or name,
            line,
            f"{join_path(error.title, format_location(e['loc']))}: {error_message(e)}",
        )
        for e in error.errors(include_url=False)
    ]


def _raised_at(error: BaseException, project_dir: Path) -> tuple[str, str]:
    """The innermost project file and line in the traceback, else ``("", "")``."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if Path(os.path.abspath(frame.filename)).is_relative_to(project_dir.absolute()):
            return display_path(frame.filename), str(frame.lineno)
    return "", ""


def forget_bytecode(files: Iterable[str | Path]) -> None:
    """Remove the cached bytecode of the project's saved files: Python checks it by
    whole-second mtime and size, so a quick edit that keeps the size would load the old code."""
    for file in files:
        if str(file).endswith(".py"):
            with contextlib.suppress(OSError, ValueError):
                os.unlink(importlib.util.cache_from_source(str(file)))
