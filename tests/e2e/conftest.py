from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.platform import RunningPlatform

Launcher = Callable[..., RunningPlatform]


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Launcher]:
    """Start `cumulo up` on a project; every platform started is stopped afterwards."""
    started: list[RunningPlatform] = []

    def launch(
        project: Path,
        *,
        env: dict[str, str] | None = None,
        state: Path | None = None,
        port: int = 0,
    ) -> RunningPlatform:
        platform = RunningPlatform(project, state or tmp_path / "state", env or {}, port=port)
        started.append(platform)
        return platform.start()

    yield launch
    for platform in started:
        if platform.process and platform.process.poll() is None:
            platform.stop()


def write_project(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder
