"""A real uvicorn server on 127.0.0.1 (port 0) in a background thread, and a plain HTTP client."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from cumulo.runtimes.worker import WorkerApp, build_app, make_server


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Served:
    """A running worker: where it listens, and a way to talk to it."""

    app: WorkerApp
    port: int

    def request(
        self, method: str, path: str = "/", headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()

    def post(self, headers: dict[str, str], body: bytes = b"", path: str = "/") -> Reply:
        return self.request("POST", path, headers, body)


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """``serve(fn, signature=..., **build_app_options)`` starts a worker for the test."""
    running: list[tuple[Any, threading.Thread, WorkerApp]] = []

    def start(fn: Callable[..., Any], signature: str | None = None, **options: Any) -> Served:
        app = build_app(fn, signature=signature, name=options.pop("name", "fn"), **options)
        sock = listening_socket()
        server = make_server(app)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, app))
        return Served(app, sock.getsockname()[1])

    yield start
    for server, thread, app in running:
        server.should_exit = True
        thread.join(timeout=10)
        app.close()
