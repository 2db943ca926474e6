"""The worker's ASGI app: one function, its HTTP binding, and a few reserved routes.

- cloudevent functions: ``POST`` on any path, the CloudEvents HTTP binding
  (binary, structured, batch); responses per :mod:`cumulo.runtimes.worker.contract`.
- http functions: any method and path, functions-framework semantics
  (:mod:`~cumulo.runtimes.worker.http_functions`, or
  :mod:`~cumulo.runtimes.worker.aio_functions` for ``async def``).
- reserved: ``GET /_cumulo/health``; ``GET /dapr/subscribe`` and, for cloudevent
  functions, ``POST /dapr/events`` (:mod:`~cumulo.runtimes.worker.dapr`).

It is a plain ASGI callable: no framework on the hot path. Sync functions run in
a thread pool of ``concurrency`` threads, created on first use (so an app built
before ``fork`` serves in the child); ``async def`` functions are awaited.

A call cannot be cancelled once it runs: when the client gives up (a delivery
timeout), a sync handler that never returns keeps its thread, and after
``concurrency`` of them the worker accepts requests it will never run (an
``async def`` one that blocks stalls the whole loop at once). Only ending the
process frees them, so whoever times a worker out must recycle it: the local
supervisor does (:mod:`cumulo.runtimes.local.pool`). In a cluster the health
route still answers while only threads are stuck; a liveness probe catches a
blocked loop, not busy threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson

from cumulo.runtimes.worker.aio_functions import StarletteFunction
from cumulo.runtimes.worker.asgi import (
    DEFAULT_MAX_BODY_BYTES,
    JSON,
    LazyExecutor,
    Receive,
    Scope,
    Send,
    send_response,
    serve_lifespan,
)
from cumulo.runtimes.worker.cloudevent_handler import CloudEventHandler
from cumulo.runtimes.worker.dapr import EVENTS_ROUTE, SKIP_ROUTE, SUBSCRIBE_ROUTE, DaprHandler
from cumulo.runtimes.worker.http_functions import FlaskFunction
from cumulo.runtimes.worker.outcome import CloudEventInvoker
from cumulo.runtimes.worker.target import Signature, detect_signature, uses_asgi_request

HEALTH_ROUTE = "/_cumulo/health"
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class WorkerApp:
    """ASGI app serving one function; call :meth:`close` when done serving."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        signature: Signature | None,
        name: str,
        concurrency: int = 16,
        dapr_subscriptions: Iterable[Mapping[str, Any]] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.fn = fn
        self.name = name
        self.signature = detect_signature(fn, signature)
        self.pool = LazyExecutor(concurrency, name)
        invoker = CloudEventInvoker(fn, name=name) if self.signature == "cloudevent" else None
        self.handler = self._function_handler(invoker, max_body_bytes)
        dapr = DaprHandler(invoker, self.pool, dapr_subscriptions, max_body_bytes)
        self.routes: dict[str, Handler] = {
            HEALTH_ROUTE: self._health,
            SUBSCRIBE_ROUTE: dapr.subscribe,
            SKIP_ROUTE: dapr.skip,
        }
        if invoker is not None:
            self.routes[EVENTS_ROUTE] = dapr.events
        self._health_body = orjson.dumps(
            {"status": "ok", "function": name, "signature": self.signature}
        )

    def _function_handler(self, invoker: CloudEventInvoker | None, max_body_bytes: int) -> Handler:
        if invoker is not None:
            return CloudEventHandler(invoker, self.pool, max_body_bytes)
        if uses_asgi_request(self.fn):
            return StarletteFunction(self.fn, name=self.name, pool=self.pool)
        return FlaskFunction(self.fn, name=self.name, pool=self.pool, max_body_bytes=max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.routes.get(scope["path"])
            await (route or self.handler)(scope, receive, send)
        elif scope["type"] == "lifespan":
            await serve_lifespan(receive, send)

    async def _health(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_response(send, 200, [(b"content-type", JSON)], self._health_body)

    def close(self, wait: bool = True) -> None:
        """Stop the thread pool (after the running calls finish, when ``wait``)."""
        self.pool.shutdown(wait=wait)


def build_app(
    fn: Callable[..., Any],
    *,
    signature: Signature | None,
    name: str,
    concurrency: int = 16,
    dapr_subscriptions: Iterable[Mapping[str, Any]] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> WorkerApp:
    """The ASGI app that serves ``fn`` (see the module docstring for its routes)."""
    return WorkerApp(
        fn,
        signature=signature,
        name=name,
        concurrency=concurrency,
        dapr_subscriptions=dapr_subscriptions,
        max_body_bytes=max_body_bytes,
    )
