"""Serving a cloudevent function over HTTP: any path, POST, the CloudEvents HTTP binding.

The fast path reads the request with Cumulo's own decoder (binary,
structured, batch; CloudEvents 1.0 and 0.3) and runs the function without
Flask. A request it cannot read is answered as functions-framework answers it:
in the ``flask`` flavour the function's Flask app takes it
(:func:`~cumulo.runtimes.worker.flask_views.cloudevent_view`: the SDK's reading,
then a legacy event converted), in the ``asgi`` flavour the SDK's reading or a
plain-text 400. So does every request when the module registered an
``errorhandler``, which only Flask can apply. Responses follow
:mod:`cumulo.runtimes.worker.contract`.
"""

from __future__ import annotations

from collections.abc import Mapping

from cloudevents.http import from_http

from cumulo.errors import InvalidEventError, PayloadTooLargeError
from cumulo.events.cloudevent import events_from_http, from_sdk, is_batch
from cumulo.events.event import Event
from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.asgi import LazyExecutor, Receive, Scope, Send, header_dict, read_body
from cumulo.runtimes.worker.asgi import send_response as send_whole
from cumulo.runtimes.worker.contract import Flavor, Response
from cumulo.runtimes.worker.flask_host import FlaskHost
from cumulo.runtimes.worker.outcome import CloudEventInvoker


class CloudEventHandler:
    """ASGI handler that runs each CloudEvent of a request through the function."""

    def __init__(
        self,
        invoker: CloudEventInvoker,
        pool: LazyExecutor,
        max_body_bytes: int,
        *,
        flavor: Flavor = "flask",
        flask_host: FlaskHost | None = None,
        always_flask: bool = False,
    ):
        self.invoker = invoker
        self.pool = pool
        self.max_body_bytes = max_body_bytes
        self.flavor = flavor
        self.flask_host = flask_host
        self.always_flask = always_flask and flask_host is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = header_dict(scope)
        problems = contract.wants_problems(headers)
        if scope["method"] != "POST":
            await send_whole(
                send, *contract.method_not_allowed(scope["method"], self._flavor(problems))
            )
            return
        try:
            body = await read_body(scope, receive, self.max_body_bytes)
        except PayloadTooLargeError as e:
            await send_whole(send, *contract.invalid_request_response(e))
            return
        if body is None:
            return
        if self.always_flask and self.flask_host is not None:
            await self.flask_host.send_answer(scope, body, send)
            return
        try:
            events = events_from_http(headers, body)
        except InvalidEventError as e:
            if problems:
                await send_whole(send, *contract.invalid_request_response(e))
            elif self.flask_host is not None:
                await self.flask_host.send_answer(scope, body, send)
            else:
                await send_whole(send, *await self._sdk_reading(headers, body))
            return
        await send_whole(send, *await self.run(events, headers, problems))

    def _flavor(self, problems: bool) -> Flavor | None:
        return None if problems else self.flavor

    async def run(
        self, events: list[Event], headers: Mapping[str, str], problems: bool
    ) -> Response:
        outcome, index = await self.invoker.call_each(events, self.pool.get(), headers)
        batch = is_batch(headers)
        return contract.outcome_response(
            outcome,
            batch=batch,
            event=events[index] if index is not None else None,
            index=index if batch else None,
            flavor=self.flavor,
            problems=problems,
        )

    async def _sdk_reading(self, headers: Mapping[str, str], body: bytes) -> Response:
        """The asgi flavour's second chance: what the CloudEvents SDK reads, or its 400."""
        try:
            event = from_sdk(from_http(dict(headers), body))
        except Exception as e:
            return contract.bad_request("asgi", f"Bad Request: not a CloudEvent: {e!r}")
        return await self.run([event], headers, problems=False)
