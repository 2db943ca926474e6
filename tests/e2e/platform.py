"""A real `cumulo up` in a subprocess, and what tests do with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT = 60.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RunningPlatform:
    project: Path
    state: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    port: int = 0  # the gateway's; 0 picks one
    args: list[str] = field(default_factory=list)  # more options for `cumulo up`

    def start(self) -> RunningPlatform:
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "gateway.json").unlink(missing_ok=True)
        env = {**os.environ, "CUMULO_STATE_DIR": str(self.state), **self.env}
        with open(self.state / "platform.out", "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cumulo",
                    "up",
                    str(self.project),
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = self._wait_for_gateway()
        return self

    def _wait_for_gateway(self) -> str:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"cumulo up exited {self.process.returncode}:\n{self.output()}"
                )
            try:
                info = json.loads((self.state / "gateway.json").read_text())
                if info["pid"] == self.process.pid:
                    return str(info["url"])
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"cumulo up did not start:\n{self.output()}")

    def output(self) -> str:
        path = self.state / "platform.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9 the platform process (its templates and workers die with it)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Answer:
        request = urllib.request.Request(
            self.url + path, data=body, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Answer(
                    response.status,
                    {k.lower(): v for k, v in response.headers.items()},
                    response.read(),
                )
        except urllib.error.HTTPError as e:
            return Answer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def publish(self, events: list[dict[str, Any]], topic: str = "default") -> Answer:
        return self.request(
            "POST",
            f"/events?topic={topic}",
            json.dumps(events).encode(),
            {"Content-Type": "application/cloudevents-batch+json"},
        )

    def status(self) -> dict[str, Any]:
        return dict(self.request("GET", "/api/status").json())

    def function(self, name: str) -> dict[str, Any]:
        return next(f for f in self.status()["functions"] if f["name"] == name)

    def events(self, topic: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/api/events?topic={topic}&limit=10000").json())

    def log(self, function: str) -> str:
        path = self.state / "logs" / f"{function}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def cloudevent(type: str, data: Any = None, *, id: str, source: str = "/tests") -> dict[str, Any]:
    event = {"specversion": "1.0", "id": id, "source": source, "type": type}
    if data is not None:
        event |= {"data": data, "datacontenttype": "application/json"}
    return event
