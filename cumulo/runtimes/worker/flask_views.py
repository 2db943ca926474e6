"""What runs inside the worker's Flask app for each signature, as functions-framework runs it.

Each view takes the route's ``path`` and works on ``flask.request``:

- http: the function gets the request; what it returns goes through Flask.
- event (a background function, ``def f(data, context)``): a CloudEvent whose
  type functions-framework knows how to convert becomes ``(data, context)``;
  another binary CloudEvent gives the raw body and a context from its
  ``ce-*`` headers; a legacy ``{"context": …, "data": …}`` body (or a raw
  Pub/Sub push) gives its parts; no body is 400. Answers 200 ``OK``.
- typed: the JSON body through the input type's ``from_dict``; the result's
  ``to_dict`` as JSON (a builtin is returned as is; ``None`` gives an empty
  200); any failure is a 500.
- cloudevent, when the worker's fast path cannot read the request as a
  CloudEvent: the SDK's reading (so an ``application/json`` structured event
  still works), then a legacy event converted to a CloudEvent, then 400 saying
  why; success answers 200 ``OK``, or the reply events.

Cumulo's own errors (``Retry``, ``PermanentError``) answer through
:mod:`cumulo.runtimes.worker.contract`; anything else the function raises is
left to Flask: a user ``errorhandler``, else the crash handler's 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import cloudevents.exceptions as sdk_errors
import flask
from cloudevents.http import from_http, is_binary
from functions_framework import event_conversion
from functions_framework.background_event import BackgroundEvent
from functions_framework.exceptions import EventConversionException, FunctionsFrameworkException
from google.cloud.functions.context import Context

from cumulo.errors import InvalidEventError
from cumulo.events.cloudevent import from_sdk
from cumulo.events.outcome import Success
from cumulo.runtimes.worker import contract
from cumulo.runtimes.worker.outcome import CloudEventInvoker

View = Callable[[str], Any]
OK = "OK"


def http_view(fn: Callable[..., Any]) -> View:
    def run(path: str) -> Any:
        return fn(flask.request._get_current_object())  # type: ignore[attr-defined]

    return run


def event_view(fn: Callable[..., Any]) -> View:
    def run(path: str) -> Any:
        request = flask.request
        if event_conversion.is_convertable_cloud_event(request):
            fn(*event_conversion.cloud_event_to_background_event(request))
        elif is_binary(request.headers):
            headers = request.headers
            context = Context(
                eventId=headers.get("ce-eventId"),
                timestamp=headers.get("ce-timestamp"),
                eventType=headers.get("ce-eventType"),
                resource=headers.get("ce-resource"),
            )
            fn(request.get_data(), context)
        else:
            parts = event_conversion.marshal_background_event_data(request)
            if not parts:
                flask.abort(400)
            event = BackgroundEvent(**parts)
            fn(event.data, Context(**event.context))
        return OK

    return run


def typed_view(fn: Callable[..., Any], input_type: type) -> View:
    def run(path: str) -> Any:
        try:
            result = fn(input_type.from_dict(flask.request.get_json()))  # type: ignore[attr-defined]
            if result is None:
                return "", 200
            if type(result).__module__ == "builtins":
                return result
            if not callable(getattr(result, "to_dict", None)):
                raise TypeError(f"{type(result)} has no to_dict method")
            return json.dumps(result.to_dict())
        except Exception as e:
            raise FunctionsFrameworkException("Function execution failed with the error") from e

    return run


def cloudevent_view(invoker: CloudEventInvoker) -> View:
    def run(path: str) -> Any:
        request = flask.request
        try:
            sdk_event = from_http(request.headers, request.get_data())
        except (sdk_errors.MissingRequiredFields, sdk_errors.InvalidRequiredFields) as e:
            sdk_event = _converted_legacy_event(request, e)
        try:
            event = from_sdk(sdk_event)
        except InvalidEventError as e:
            flask.abort(400, description=f"Not a valid CloudEvent: {e}")
        outcome = invoker.run_raising(event)
        if isinstance(outcome, Success) and not outcome.replies:
            return OK
        return _flask_response(contract.outcome_response(outcome))

    return run


def _converted_legacy_event(request: flask.Request, sdk_error: Exception) -> Any:
    try:
        return event_conversion.background_event_to_cloud_event(request)
    except EventConversionException as e:
        flask.abort(
            400,
            description=(
                f"The request is neither a CloudEvent ({sdk_error!r}) nor a legacy event "
                f"({e!r}). Headers: {request.headers}; body: {request.get_data()!r}"
            ),
        )


def _flask_response(response: contract.Response) -> flask.Response:
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in response.headers
    ]
    return flask.Response(response.body, status=response.status, headers=headers)
