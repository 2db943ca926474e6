"""Shared helpers for the local runtime's unit tests: functions written to a folder,
their specs, templates started on them (and stopped afterwards), and bounded waits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cumulo.runtimes.local.template import Template, TemplateConfig
from cumulo.spec.models import Function

Check = Callable[[], bool]
Eventually = Callable[..., Awaitable[None]]
ExitLog = list[tuple[int, int]]
StartTemplate = Callable[..., Awaitable[tuple[Template, ExitLog]]]


async def wait_until(check: Check, timeout: float = 15.0, what: str = "the condition") -> None:
    """Return as soon as ``check()`` is true; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def eventually() -> Eventually:
    """``await eventually(check, what=...)``: a bounded wait on a condition."""
    return wait_until


def function_spec(name: str = "fn", handler: str = "main:handle", **spec: Any) -> Function:
    """A function's spec as ``cumulo.yaml`` would give it (camelCase keys allowed)."""
    return Function.model_validate(
        {"metadata": {"name": name}, "spec": {"handler": handler, **spec}}
    )


def template_config(
    folder: Path, name: str = "fn", target: str = "main:handle", **more: Any
) -> TemplateConfig:
    """Settings for a template of ``target`` in ``folder``, logging to ``folder/<name>.log``."""
    return TemplateConfig(
        name=name,
        target=target,
        source=folder,
        log=folder / f"{name}.log",
        env=tuple(os.environ.items()),
        **more,
    )


def process_gone(pid: int) -> bool:
    """Whether ``pid`` no longer runs (gone, or a zombie nobody reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest_asyncio.fixture
async def start_template(tmp_path: Path) -> AsyncIterator[StartTemplate]:
    """Start a real template on a module written to ``tmp_path``; every one is stopped after.

    ``await start_template(source, target="main:handle")`` writes ``source`` as
    ``tmp_path/main.py`` and returns the started template with the list its
    children's exits are reported to.
    """
    started: list[Template] = []

    async def start(
        source: str, target: str = "main:handle", **settings: Any
    ) -> tuple[Template, ExitLog]:
        (tmp_path / "main.py").write_text(source)
        exits: ExitLog = []
        template = Template(
            template_config(tmp_path, target=target, **settings),
            on_exit=lambda pid, code: exits.append((pid, code)),
        )
        started.append(template)
        await template.start()
        return template, exits

    yield start
    for template in started:
        await template.stop()
