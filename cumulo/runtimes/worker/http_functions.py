"""Serving http functions with functions-framework's request semantics.

A function written for ``@functions_framework.http`` runs unchanged: one Flask
app per worker, built as functions-framework's ``create_app`` builds it (the
function at ``/`` and ``/<path>``, 404 for ``/robots.txt`` and
``/favicon.ico``, the request body always read, an uncaught exception → 500
with ``X-Google-Status: crash``). The function gets ``flask.request`` inside a
request context; what it returns goes through ``make_response``, so str, dict,
tuple and Response all work, as do ``flask.abort`` and ``flask.jsonify``.
The Flask app runs in the worker's thread pool.

Not carried over: functions-framework's execution-id logging and its legacy
``ENTRY_POINT`` mode; the user's module is imported before the Flask app exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import flask
import werkzeug.routing

from cumulo.errors import PayloadTooLargeError
from cumulo.runtimes.worker.asgi import (
    LazyExecutor,
    Receive,
    Scope,
    Send,
    read_body,
    send_raw,
    send_response,
)
from cumulo.runtimes.worker.contract import invalid_request_response
from cumulo.runtimes.worker.wsgi import call_wsgi, wsgi_environ

CRASH_HEADER = "X-Google-Status"


def create_flask_app(fn: Callable[..., Any], name: str) -> flask.Flask:
    """The Flask app functions-framework would build around an http function."""
    app = flask.Flask(getattr(fn, "__module__", None) or name)
    app.register_error_handler(500, _crash_handler)
    rules = app.url_map
    rules.add(werkzeug.routing.Rule("/", defaults={"path": ""}, endpoint="run"))
    rules.add(werkzeug.routing.Rule("/robots.txt", endpoint="error"))
    rules.add(werkzeug.routing.Rule("/favicon.ico", endpoint="error"))
    rules.add(werkzeug.routing.Rule("/<path:path>", endpoint="run"))

    def run(path: str) -> Any:
        return fn(flask.request._get_current_object())  # type: ignore[attr-defined]

    app.view_functions["run"] = run
    app.view_functions["error"] = _not_found
    app.after_request(_read_request)
    return app


def _crash_handler(error: Exception) -> Any:
    return str(error), 500, {CRASH_HEADER: "crash"}


def _not_found() -> Any:
    flask.abort(404, description="Not Found")


def _read_request(response: flask.Response) -> flask.Response:
    """Read the whole request before responding, as functions-framework does."""
    if not response.is_streamed:
        flask.request.get_data()
    return response


class FlaskFunction:
    """ASGI handler: an http function behind its Flask app, run in the thread pool."""

    def __init__(
        self, fn: Callable[..., Any], *, name: str, pool: LazyExecutor, max_body_bytes: int
    ):
        self.flask_app = create_flask_app(fn, name)
        self.pool = pool
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
        except PayloadTooLargeError as e:
            await send_response(send, *invalid_request_response(e))
            return
        if body is None:
            return
        environ = wsgi_environ(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, payload = await loop.run_in_executor(
            self.pool.get(), call_wsgi, self.flask_app, environ
        )
        await send_raw(send, status, headers, payload)
