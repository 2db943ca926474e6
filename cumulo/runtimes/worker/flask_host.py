"""The worker's Flask app: functions-framework's semantics for every sync signature.

The app is the one the user's module was imported in
(:class:`~cumulo.runtimes.worker.target.LoadedFunction`), so ``current_app``,
``render_template`` (``templates/`` beside the source) and
``@functions_framework.errorhandler`` work. It is laid out as
functions-framework lays out its own: the function at ``/`` and
``/<path>`` (http: every method, 404 for ``/robots.txt`` and ``/favicon.ico``;
event: POST, and an empty 200 for ``GET /``; cloudevent and typed: POST), the
request body always read, an uncaught exception answered 500 with
``X-Google-Status: crash``, each request in its execution context, and in
legacy mode (``ENTRY_POINT``) ``None`` answered ``OK``. The views are in
:mod:`~cumulo.runtimes.worker.flask_views`; the app runs in the worker's
thread pool behind :class:`FlaskHost`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import flask
import werkzeug.routing

from cumulo.errors import PayloadTooLargeError
from cumulo.runtimes.worker import conventions, flask_views
from cumulo.runtimes.worker.asgi import (
    LazyExecutor,
    Receive,
    Scope,
    Send,
    read_body,
    send_raw,
    send_response,
)
from cumulo.runtimes.worker.contract import CRASH, CRASH_HEADER_NAME, invalid_request_response
from cumulo.runtimes.worker.execution import in_execution_context
from cumulo.runtimes.worker.outcome import CloudEventInvoker
from cumulo.runtimes.worker.target import LoadedFunction, Signature, typed_input
from cumulo.runtimes.worker.wsgi import WSGIApp, call_wsgi, wsgi_environ

Rule = werkzeug.routing.Rule


def configure_flask_app(
    loaded: LoadedFunction, signature: Signature, invoker: CloudEventInvoker | None = None
) -> WSGIApp:
    """Mount ``loaded``'s function on its Flask app; the WSGI app to serve."""
    app = loaded.flask_app
    app.register_error_handler(500, _crash_handler)
    view = _view(loaded, signature, invoker)
    methods = None if signature == "http" else ["POST"]
    app.url_map.add(Rule("/", defaults={"path": ""}, endpoint="run", methods=methods))
    if signature == "http":
        app.url_map.add(Rule("/robots.txt", endpoint="not-found"))
        app.url_map.add(Rule("/favicon.ico", endpoint="not-found"))
        app.view_functions["not-found"] = _not_found
        app.after_request(_read_request)
    if signature == "event":
        app.url_map.add(Rule("/", endpoint="empty", methods=["GET"]))
        app.view_functions["empty"] = lambda: ""
    app.url_map.add(Rule("/<path:path>", endpoint="run", methods=methods))
    app.view_functions["run"] = in_execution_context(view)
    if conventions.legacy_mode():
        _answer_none_with_ok(app)
    return app.wsgi_app


def has_user_error_handlers(app: flask.Flask) -> bool:
    """Whether the module registered an ``errorhandler`` (beyond the crash handler)."""
    return any(
        handler is not _crash_handler
        for by_code in app.error_handler_spec.values()
        for by_class in by_code.values()
        for handler in by_class.values()
    )


def _view(
    loaded: LoadedFunction, signature: Signature, invoker: CloudEventInvoker | None
) -> flask_views.View:
    if signature == "event":
        return flask_views.event_view(loaded.fn)
    if signature == "typed":
        return flask_views.typed_view(loaded.fn, typed_input(loaded.fn))
    if signature == "cloudevent":
        return flask_views.cloudevent_view(
            invoker or CloudEventInvoker(loaded.fn, name=loaded.target)
        )
    return flask_views.http_view(loaded.fn)


def _crash_handler(error: Exception) -> Any:
    return str(error), 500, {CRASH_HEADER_NAME: CRASH}


def _not_found() -> Any:
    flask.abort(404, description="Not Found")


def _read_request(response: flask.Response) -> flask.Response:
    """Read the whole request before responding, as functions-framework does."""
    if not response.is_streamed:
        flask.request.get_data()
    return response


def _answer_none_with_ok(app: flask.Flask) -> None:
    make_response = app.make_response

    def none_is_ok(value: Any) -> flask.Response:
        return make_response("OK" if value is None else value)

    app.make_response = none_is_ok  # type: ignore[method-assign, assignment]


class FlaskHost:
    """ASGI handler: the function's Flask app, run whole in the thread pool."""

    def __init__(self, wsgi_app: WSGIApp, *, pool: LazyExecutor, max_body_bytes: int):
        self.wsgi_app = wsgi_app
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
        await self.send_answer(scope, body, send)

    async def send_answer(self, scope: Scope, body: bytes, send: Send) -> None:
        """Answer a request whose body has been read."""
        environ = wsgi_environ(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, payload = await loop.run_in_executor(
            self.pool.get(), call_wsgi, self.wsgi_app, environ
        )
        await send_raw(send, status, headers, payload)
