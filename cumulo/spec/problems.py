"""Where a resource came from, and how its mistakes read: ``file:path: message``.

A resource loaded from YAML is located as ``Kind/name`` (or ``document[i]``,
counted from 0 in its file, while its name is unknown) followed by the dotted
key path, e.g. ``cumulo.yaml:Function/train.spec.scale.max``. A resource declared in Python is
*embedded* in something else: a ``@function`` in its module
(``main.py:train.scale.max``), an inline trigger in its function
(``Function/train.spec.triggers[0].bus``). Embedded origins drop the leading
``spec.`` / ``metadata.`` of a path, because that is how their author wrote it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cumulo.errors import Problem
from cumulo.spec.models import HANDLER_PATTERN, KINDS, NAME_PATTERN, Resource

_EMBEDDED_HEADS = ("spec", "metadata")
_PATTERN_MESSAGES = {
    NAME_PATTERN: (
        "{input!r} is not a DNS-1123 label (at most 63 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit)"
    ),
    HANDLER_PATTERN: "{input!r} is not 'module:attribute' (e.g. 'main:train')",
}
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def join_path(prefix: str, path: str) -> str:
    """``prefix`` and ``path`` joined with a dot (none before a ``[i]`` index)."""
    if not path:
        return prefix
    if not prefix or path.startswith("["):
        return prefix + path
    return f"{prefix}.{path}"


def format_location(loc: Sequence[Any]) -> str:
    """A pydantic error location as a dotted path with ``[i]`` list indexes."""
    path = ""
    for part in loc:
        path = join_path(path, f"[{part}]" if isinstance(part, int) else str(part))
    return path


def error_message(error: Any, model: type[BaseModel] | None = None) -> str:
    """A pydantic error's message, minus its ``Value error,`` prefix and raw regexes.

    With the ``model`` that was validated, an unknown key gets a "did you mean".
    """
    pattern = (error.get("ctx") or {}).get("pattern")
    if error["type"] == "string_pattern_mismatch" and pattern in _PATTERN_MESSAGES:
        return _PATTERN_MESSAGES[pattern].format(input=error.get("input"))
    if error["type"] == "extra_forbidden" and error["loc"]:
        *parent, key = error["loc"]
        return unknown("key", str(key), keys_at(model, parent) if model else [])
    message: str = error["msg"]
    for prefix in _MESSAGE_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def unknown(what: str, value: str, known: Iterable[str]) -> str:
    """``unknown key 'timout' (did you mean 'timeout'?)``, the hint when one is close."""
    close = difflib.get_close_matches(value, sorted(known), n=1)
    return f"unknown {what} '{value}'" + (f" (did you mean '{close[0]}'?)" if close else "")


def keys_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """The keys (aliases) a mapping at ``loc`` inside ``model`` may have."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
    found = _model_in(annotation)
    return [field.alias or name for name, field in found.model_fields.items()] if found else []


def _step(annotation: Any, part: Any) -> Any:
    """The type found at ``part`` (a key or index) inside a value of type ``annotation``."""
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            for name, field in option.model_fields.items():
                if part in (name, field.alias):
                    return field.annotation
        elif get_origin(option) in (list, dict):
            return get_args(option)[-1]
    return None


def _options(annotation: Any) -> list[Any]:
    """The alternatives of a union (``X | None``), or the annotation itself."""
    if get_origin(annotation) in (Union, UnionType):
        return list(get_args(annotation))
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for option in _options(annotation):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


@dataclass(frozen=True)
class Origin:
    """Where a resource was declared: a file and the path of the resource in it."""

    file: str
    prefix: str
    embedded: bool = False

    def path_to(self, path: str) -> str:
        """The full path of ``path`` (a path inside the resource, e.g. ``spec.bus``)."""
        if self.embedded:
            head, _, rest = path.partition(".")
            if head in _EMBEDDED_HEADS:
                path = rest
        return join_path(self.prefix, path)

    def problem(self, path: str, message: str) -> Problem:
        """A problem at ``path`` inside this resource."""
        return Problem(self.file, self.path_to(path), message)

    def child(self, path: str) -> Origin:
        """The origin of a resource written inline at ``path`` inside this one."""
        return Origin(self.file, self.path_to(path), embedded=True)

    def problems(self, error: ValidationError) -> list[Problem]:
        """Every error of a failed validation, as problems."""
        model = KINDS.get(error.title)
        return [
            self.problem(format_location(e["loc"]), error_message(e, model))
            for e in error.errors(include_url=False)
        ]

    def __str__(self) -> str:
        return f"{self.file}:{self.prefix}"


@dataclass(frozen=True)
class Located:
    """A valid resource and where it was declared."""

    resource: Resource
    origin: Origin
