"""Fixtures for spec tests: small projects written into a temporary folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

WriteProject = Callable[..., Path]


@pytest.fixture
def write_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WriteProject:
    """Write ``{file name: text}`` into a project folder below the working directory.

    Problems then name files as ``project/cumulo.yaml``, as a user's run would.
    """
    monkeypatch.chdir(tmp_path)

    def write(files: dict[str, str], folder: str = "project") -> Path:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        for name, text in files.items():
            (root / name).write_text(textwrap.dedent(text).lstrip())
        return root

    return write
