"""Running the worker app under uvicorn (uvloop + httptools, no access log, no lifespan).

It serves on a host and port, or on a socket that is already listening: the
local supervisor binds sockets and forks, and each child serves on the one it
inherited (``serve(app, sock=sock)``; the app's thread pool is created on first
use, so it is the child's own). SIGTERM and SIGINT shut down gracefully: stop
accepting, let in-flight requests finish (at most ``graceful_timeout``
seconds), stop the pool, then return, so the process can exit 0.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Generator
from typing import Any

import uvicorn

_SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WorkerServer(uvicorn.Server):
    """uvicorn's server, minus re-raising the shutdown signal once it has stopped."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _SHUTDOWN_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def make_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "warning",
    graceful_timeout: float = 30.0,
    backlog: int = 2048,
) -> WorkerServer:
    """A configured server; ``run(sockets=[sock])`` it, set ``should_exit`` to stop it.

    Logging is left to the host process (uvicorn's own config is not applied),
    and proxy headers are not trusted, as under functions-framework's gunicorn.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="none",
        interface="asgi3",
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=int(graceful_timeout),
        backlog=backlog,
    )
    return WorkerServer(config)


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("a preloading server serves nothing")


def preload() -> None:
    """Import what serving will import (uvloop, the httptools protocol, the lifespan), so
    that a process forked after this serves without importing them first."""
    config = make_server(_no_app).config
    config.load()
    config.get_loop_factory()  # imports uvloop's loop setup


def serve(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
    log_level: str = "warning",
    graceful_timeout: float = 30.0,
) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, on ``sock`` if given, else on ``host:port``."""
    server = make_server(
        app, host=host, port=port, log_level=log_level, graceful_timeout=graceful_timeout
    )
    try:
        server.run(sockets=[sock] if sock is not None else None)
    finally:
        close = getattr(app, "close", None)
        if close is not None:
            close()
