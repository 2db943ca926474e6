"""``cumulo watch``: follow the ML chain as it happens.

Progress events (``dev.cumulo.run.progress``) become one progress bar per run;
every other ``dev.cumulo.*`` event of the chain is printed as a line that says
what happened (trained, evaluated, deployed, rejected, failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from cumulo.events.lineage import (
    MODEL_DEPLOYED,
    MODEL_REJECTED,
    PREFIX,
    RUN_FAILED,
    RUN_PROGRESS,
)

POLL_SECONDS = 0.3

Page = Callable[[int], list[dict[str, Any]]]  # offset → the messages after it


def describe(event: dict[str, Any]) -> str:
    """One line for a chain event."""
    data = _object(event.get("data"))
    kind = event["type"].removeprefix(PREFIX)
    model = f"{data.get('model', '')} v{data['version']}" if "version" in data else ""
    if kind == "model.evaluated":
        verdict = "promote" if data.get("promote") else "keep the champion"
        return f"{kind}  {model}: {verdict} ({data.get('reason', '')})"
    if kind == "run.failed":
        return f"{kind}  {data.get('function')} run {data.get('run')}: {data.get('message', '')}"
    if kind == "model.rejected":
        return f"{kind}  {model}: {data.get('reason', '')}"
    return f"{kind}  {model}".rstrip()


CHAIN_ENDS = (MODEL_DEPLOYED, MODEL_REJECTED, RUN_FAILED)


def started_by(event: dict[str, Any]) -> str | None:
    """The id of the event that started the chain this event is part of."""
    found = _object(_object(event.get("data")).get("lineage")).get("triggerEvent")
    return found if isinstance(found, str) else None


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


class Watch:
    """Draws events; with ``chain``, only those of the chain that event started."""

    def __init__(self, console: Console, until: Iterable[str] = (), chain: str | None = None):
        self.console = console
        self.until = set(until)
        self.chain = chain
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
        )
        self.bars: dict[str, TaskID] = {}
        self.finished = False

    def show(self, event: dict[str, Any]) -> None:
        """Draw one event; remember when an ``--until`` type arrives."""
        if self.chain is not None and started_by(event) != self.chain:
            return
        if event["type"] == RUN_PROGRESS:
            self._advance(event.get("data") or {})
        elif event["type"].startswith(PREFIX):
            self.progress.console.print(f"[cyan]{describe(event)}[/cyan]", highlight=False)
        self.finished = self.finished or event["type"] in self.until

    def _advance(self, data: dict[str, Any]) -> None:
        run = str(data.get("run") or data.get("function") or "run")
        label = f"{data.get('function', '')} {data.get('model', '')}: {data.get('message', '')}"
        if run not in self.bars:
            self.bars[run] = self.progress.add_task(label, total=100)
        self.progress.update(
            self.bars[run], completed=float(data.get("percent", 0)), description=label
        )

    def follow(self, page: Page, after: int, timeout: float | None = None) -> bool:
        """Show events after ``after`` until an ``--until`` type arrives; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.progress:
            while not self.finished:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                messages = page(after)
                for message in messages:
                    self.show(message["event"])
                after = messages[-1]["offset"] if messages else after
                if not messages:
                    time.sleep(POLL_SECONDS)
        return True
