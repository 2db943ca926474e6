"""Talking to a project's platform from Python and the CLI.

While ``cumulo up`` runs, everything goes through its gateway (found through
``<state>/gateway.json``), so the dispatcher hears of new events at once. When
it is not running, ``publish`` writes straight to the project's bus: the events
wait there, durable, for the next ``cumulo up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from cumulo.config import Settings
from cumulo.errors import BusUnavailableError, CumuloError, PlatformNotRunningError
from cumulo.events import tracing
from cumulo.events.bus.base import Bus
from cumulo.events.event import Event, new_event, to_json

CLI_SOURCE = "/cumulo/cli"


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class GatewayError(CumuloError):
    """The gateway answered with an error (its problem+json detail is the message)."""

    def __init__(self, answer: HttpAnswer):
        try:
            detail = answer.json().get("detail", "")
        except (ValueError, AttributeError):
            detail = answer.body[:300].decode(errors="replace")
        super().__init__(f"HTTP {answer.status}: {detail}")
        self.answer = answer


def _is_process_id(value: object) -> TypeGuard[int]:
    """Whether ``value`` names one process: a positive int (0 and -1 mean groups to os.kill)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class Client:
    def __init__(self, project_dir: Path | str = ".", settings: Settings | None = None):
        self.project_dir = Path(project_dir).resolve()
        self.settings = settings or Settings()
        self.state = self.settings.state_path(self.project_dir)

    # --- finding the platform ---------------------------------------------

    def gateway_url(self) -> str | None:
        """The running platform's URL, or None when ``cumulo up`` is not running.

        A missing, unreadable or malformed ``gateway.json`` (not a JSON object, no
        positive integer ``pid``, no string ``url``) or a pid that no longer runs all
        read as "not running".
        """
        try:
            info = json.loads((self.state / "gateway.json").read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict):
            return None
        pid, url = info.get("pid"), info.get("url")
        if not _is_process_id(pid) or not isinstance(url, str):
            return None
        try:
            os.kill(pid, 0)
        except (OSError, OverflowError):
            return None
        return url

    def require_gateway(self) -> str:
        url = self.gateway_url()
        if url is None:
            raise PlatformNotRunningError(
                f"no platform is running for {self.project_dir} (start it with `cumulo up`)"
            )
        return url

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> HttpAnswer:
        headers = dict(headers or {})
        token = self.settings.api_token or self._publish_token(method, path)
        if token:  # the gateway's protected routes need it (CUMULO_API_TOKEN)
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(
            self.require_gateway() + path, data=body, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return HttpAnswer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as e:
            return HttpAnswer(e.code, dict(e.headers), e.read())
        except urllib.error.URLError as e:
            raise PlatformNotRunningError(f"the gateway did not answer: {e.reason}") from e

    # --- what users do ------------------------------------------------------

    def publish(
        self,
        type: str,
        data: Any = None,
        *,
        source: str = CLI_SOURCE,
        subject: str | None = None,
        topic: str = "default",
        id: str | None = None,
        **extensions: Any,
    ) -> Event:
        """Publish one event; returns it once it is durably on the bus."""
        event = new_event(type, source, data, id=id, subject=subject, **extensions)
        event = tracing.ensure_trace(event)
        self.publish_events([event], topic=topic)
        return event

    def _publish_token(self, method: str, path: str) -> str | None:
        """A function's publish-only token, for the one route it authorises."""
        is_publish = method == "POST" and path.split("?", 1)[0] == "/events"
        return self.settings.publish_token if is_publish else None

    def publish_events(self, events: list[Event], *, topic: str = "default") -> None:
        events = [tracing.ensure_trace(event) for event in events]  # a new trace if none
        if self.gateway_url() is None:
            asyncio.run(self._publish_to_bus(events, topic))
            return
        body = b"[" + b",".join(to_json(e) for e in events) + b"]"
        answer = self.request(
            "POST",
            f"/events?topic={topic}",
            body,
            {"Content-Type": "application/cloudevents-batch+json"},
        )
        if answer.status != 202:
            raise GatewayError(answer)

    async def _publish_to_bus(self, events: list[Event], topic: str) -> None:
        async with self._open_bus() as bus:
            await bus.publish(topic, events)

    async def _read_bus(self, topic: str, after: int, limit: int) -> list[dict[str, Any]]:
        from cumulo.runtimes.local.wiring import message_json

        async with self._open_bus() as bus:
            return [message_json(m) for m in await bus.read(topic, after=after, limit=limit)]

    @contextlib.asynccontextmanager
    async def _open_bus(self) -> AsyncIterator[Bus]:
        """The project's default bus, opened directly (only while `cumulo up` is not running)."""
        from cumulo.runtimes.local.wiring import open_bus
        from cumulo.spec import load_project

        project = load_project(self.project_dir)
        bus = open_bus(project.buses["default"], project.root, self.state, self.settings)
        try:
            await bus.start()
            yield bus
        except OSError as e:
            raise BusUnavailableError("cannot open the bus", address=bus.url) from e
        finally:
            await bus.close()

    def status(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/status").json())

    def events(
        self, topic: str = "default", after: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Events of a topic in offset order, from the gateway or straight from the bus."""
        if self.gateway_url() is None:
            return asyncio.run(self._read_bus(topic, after, limit))
        answer = self.request("GET", f"/api/events?topic={topic}&after={after}&limit={limit}")
        if answer.status != 200:
            raise GatewayError(answer)
        return list(answer.json())


def publish(type: str, data: Any = None, *, project: Path | str = ".", **options: Any) -> Event:
    """Publish an event to the project in ``project`` (see :meth:`Client.publish`)."""
    return Client(project).publish(type, data, **options)
