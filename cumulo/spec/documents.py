"""YAML in and out: the documents of a project's files, and resources as YAML.

Reading is strict where PyYAML is lenient: a key written twice in one mapping
is a mistake (PyYAML would silently keep the last), reported with its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from cumulo.errors import Problem
from cumulo.spec.models import Resource
from cumulo.spec.problems import display_path

YAML_SUFFIXES = (".yaml", ".yml")
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Document:
    """One YAML document: the file it is in (as displayed), its index there, its data."""

    file: str
    index: int
    data: Any


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key '{key}'",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_files(directory: Path) -> list[Path]:
    """The ``*.yaml`` and ``*.yml`` files directly in ``directory``, sorted, dotfiles skipped."""
    return sorted(
        path
        for path in directory.iterdir()
        if path.suffix in YAML_SUFFIXES and path.is_file() and not path.name.startswith(".")
    )


def read_documents(files: Iterable[Path]) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of every file, and what could not be read.

    A file with a syntax error contributes the documents before the error.
    """
    documents: list[Document] = []
    problems: list[Problem] = []
    for path in files:
        shown = display_path(path)
        try:
            for document in _documents_of(path, shown):
                documents.append(document)
        except yaml.MarkedYAMLError as e:
            problems.append(_syntax_problem(shown, e))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            problems.append(Problem(shown, "", f"cannot read: {e}"))
    return documents, problems


def _documents_of(path: Path, shown: str) -> Iterator[Document]:
    text = path.read_text(encoding="utf-8")
    for index, data in enumerate(yaml.load_all(text, Loader=_StrictLoader)):
        if data is not None:
            yield Document(shown, index, data)


def _syntax_problem(shown: str, error: yaml.MarkedYAMLError) -> Problem:
    """A YAML error located as ``file:line:column``."""
    mark = error.problem_mark or error.context_mark
    where = f"{mark.line + 1}:{mark.column + 1}" if mark else ""
    message = "; ".join(str(part) for part in (error.context, error.problem) if part)
    return Problem(shown, where, f"invalid YAML: {message}")


def resource_document(resource: Resource) -> dict[str, Any]:
    """A resource as a YAML-ready mapping: camelCase keys, defaults left out."""
    document: dict[str, Any] = {
        "apiVersion": resource.api_version,
        "kind": type(resource).model_fields["kind"].default,
        "metadata": _dump(resource.metadata),
    }
    spec = getattr(resource, "spec", None)
    if spec is not None and (spec_data := _dump(spec)):
        document["spec"] = spec_data
    return document


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def dump_documents(documents: Iterable[dict[str, Any]]) -> str:
    """Mappings as one multi-document YAML text, keys in the order given."""
    return yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)
