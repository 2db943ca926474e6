"""The worker's ASGI app: one function, its HTTP binding, and a few reserved routes.

- cloudevent functions: ``POST`` on any path, the CloudEvents HTTP binding
  (binary, structured, batch); responses per :mod:`cumulo.runtimes.worker.contract`
  (:mod:`~cumulo.runtimes.worker.cloudevent_handler`).
- http, event (background) and typed functions: functions-framework's semantics
  in the function's Flask app (:mod:`~cumulo.runtimes.worker.flask_host`), or
  for http in its ASGI flavour (:mod:`~cumulo.runtimes.worker.aio_functions`:
  ``async def``, ``@functions_framework.aio``, ``--asgi``).
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
from pathlib import Path
from typing import Any

import flask
import orjson
from functions_framework.exceptions import FunctionsFrameworkException

from cumulo.events.dapr_objects import EVENTS_ROUTE, SKIP_ROUTE
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
from cumulo.runtimes.worker.dapr import SUBSCRIBE_ROUTE, DaprHandler
from cumulo.runtimes.worker.deliveries import DELIVERIES_ROUTE, Deliveries
from cumulo.runtimes.worker.flask_host import (
    FlaskHost,
    configure_flask_app,
    has_user_error_handlers,
)
from cumulo.runtimes.worker.outcome import CloudEventInvoker
from cumulo.runtimes.worker.target import LoadedFunction, Signature, serving_signature, wants_asgi

HEALTH_ROUTE = "/_cumulo/health"
# functions-framework's ASGI server refuses these signatures, in these words (its tests check
# them); serve them without --asgi.
ASGI_REFUSES = {
    "typed": "ASGI server does not support typed events (signature type: 'typed')",
    "event": "ASGI server does not support legacy background events (signature type: 'event'). "
    "Use 'cloudevent' signature type instead.",
}
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class WorkerApp:
    """ASGI app serving one function; call :meth:`close` when done serving."""

    def __init__(
        self,
        function: LoadedFunction,
        *,
        signature: Signature | None,
        name: str,
        concurrency: int = 16,
        dapr_subscriptions: Iterable[Mapping[str, Any]] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        asgi: bool = False,
    ):
        self.fn = function.fn
        self.name = name
        self.signature = serving_signature(function.fn, signature)
        self.asgi = wants_asgi(function.fn, asgi)
        if asgi and self.signature in ASGI_REFUSES:
            raise FunctionsFrameworkException(ASGI_REFUSES[self.signature])
        self.pool = LazyExecutor(concurrency, name)
        invoker = (
            CloudEventInvoker(function.fn, name=name) if self.signature == "cloudevent" else None
        )
        self.handler = self._function_handler(function, invoker, max_body_bytes)
        dapr = DaprHandler(invoker, self.pool, dapr_subscriptions, max_body_bytes)
        self.routes: dict[str, Handler] = {
            HEALTH_ROUTE: self._health,
            SUBSCRIBE_ROUTE: dapr.subscribe,
            SKIP_ROUTE: dapr.skip,
        }
        if invoker is not None:
            self.routes[EVENTS_ROUTE] = dapr.events
            self.routes[DELIVERIES_ROUTE] = Deliveries(invoker, self.pool, max_body_bytes)
        self._health_body = orjson.dumps(
            {"status": "ok", "function": name, "signature": self.signature}
        )

    def _function_handler(
        self, function: LoadedFunction, invoker: CloudEventInvoker | None, max_body_bytes: int
    ) -> Handler:
        if invoker is not None and self.asgi:
            return CloudEventHandler(invoker, self.pool, max_body_bytes, flavor="asgi")
        if self.signature == "http" and self.asgi:
            return StarletteFunction(self.fn, name=self.name, pool=self.pool)
        host = FlaskHost(
            configure_flask_app(function, self.signature, invoker),
            pool=self.pool,
            max_body_bytes=max_body_bytes,
        )
        if invoker is None:
            return host
        always = has_user_error_handlers(function.flask_app)
        return CloudEventHandler(
            invoker, self.pool, max_body_bytes, flask_host=host, always_flask=always
        )

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
    fn: Callable[..., Any] | LoadedFunction,
    *,
    signature: Signature | None,
    name: str,
    concurrency: int = 16,
    dapr_subscriptions: Iterable[Mapping[str, Any]] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    asgi: bool = False,
) -> WorkerApp:
    """The ASGI app that serves ``fn`` (see the module docstring for its routes).

    ``fn`` is what :func:`~cumulo.runtimes.worker.target.load_function` loaded,
    or a bare callable (it then gets a Flask app of its own).
    """
    function = fn if isinstance(fn, LoadedFunction) else _bare(fn, name)
    return WorkerApp(
        function,
        signature=signature,
        name=name,
        concurrency=concurrency,
        dapr_subscriptions=dapr_subscriptions,
        max_body_bytes=max_body_bytes,
        asgi=asgi,
    )


def _bare(fn: Callable[..., Any], name: str) -> LoadedFunction:
    app = flask.Flask(getattr(fn, "__module__", None) or name)
    return LoadedFunction(fn, getattr(fn, "__name__", name), Path("."), app)
