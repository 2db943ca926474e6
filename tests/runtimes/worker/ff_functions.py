"""Functions written for functions-framework, unmodified: the worker must run them as it does."""

from __future__ import annotations

import flask
import functions_framework
from functions_framework import aio
from starlette.requests import Request


@functions_framework.http
def ff_echo(request: flask.Request):
    """Query args, JSON bodies, tuples with status and headers, abort and jsonify."""
    action = request.args.get("action", "hello")
    if action == "json":
        payload = request.get_json(silent=True) or {}
        return flask.jsonify(received=payload, method=request.method, path=request.path)
    if action == "tuple":
        return "created", 201, {"X-Custom": "yes", "Content-Type": "text/plain"}
    if action == "abort":
        flask.abort(404)
    if action == "dict":
        return {"name": request.args.get("name"), "all": request.args.getlist("name")}
    if action == "crash":
        raise RuntimeError("boom")
    if action == "headers":
        return {"agent": request.headers.get("X-Agent"), "ctype": request.content_type}
    return f"hello {request.args.get('name', 'world')}"


@functions_framework.cloud_event
def ff_receive(cloud_event):
    """Tells what it got, as a reply (functions-framework ignores return values)."""
    return {
        "type": "seen",
        "data": {
            "class": f"{type(cloud_event).__module__}.{type(cloud_event).__name__}",
            "attributes": dict(cloud_event.get_attributes()),
            "data": cloud_event.data,
            "subscript": [cloud_event["type"], cloud_event["source"], cloud_event["id"]],
        },
    }


@aio.http
async def ff_async_hello(request: Request):
    if request.query_params.get("action") == "tuple":
        return {"created": True}, 201
    body = await request.body()
    return f"async {request.method} {len(body)}"


@functions_framework.cloud_event
def ff_ce_strict(cloud_event):
    """Returns nothing, as functions-framework functions do; raises on ``{"crash": true}``."""
    if isinstance(cloud_event.data, dict) and cloud_event.data.get("crash"):
        raise ValueError("asked to crash")


def ff_background(data, context):
    """A legacy background function; raises on ``{"crash": true}``."""
    if isinstance(data, dict) and data.get("crash"):
        raise ValueError("asked to crash")
