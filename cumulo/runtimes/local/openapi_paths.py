"""The operations of the gateway's OpenAPI document (:mod:`cumulo.runtimes.local.openapi`).

One entry per route of the gateway's Starlette app, with every status it can
answer. Parameters and bodies come from :mod:`cumulo.runtimes.local.api_models`
through the ``parameters`` function :func:`paths` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cumulo.runtimes.local import api_models as models

Parameters = Callable[..., list[dict[str, Any]]]
PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
HTML = "text/html"
Security = list[dict[str, list[str]]]
PUBLIC: Security = []  # an operation's ``security`` when no token is needed
OPTIONAL_TOKEN: Security = [{}, {"bearer": []}]  # /fn/*: as the function's spec.access says
DASHBOARD: Security = [{"bearer": []}, {"uiCookie": []}, {"uiToken": []}]
ERRORS = {
    "400": "The query, path or body breaks a rule: `problems` names each field and rule.",
    "404": "Not found.",
    "409": "The request conflicts with the platform's state.",
    "413": "The body is over the size limit (refused before it is all read).",
    "415": "The body is not of a media type this route reads.",
    "431": "The request's headers are over the size or count limit.",
    "501": "The bus cannot do this (a Dapr bus delivers by push).",
    "503": "The bus cannot be reached now; see `Retry-After`.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    response["content"] = {PROBLEM_JSON: {"schema": _ref("Problem")}}
    if description == ERRORS["503"]:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return response


def _content(media: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return _content(JSON, description, schema or {"type": "object"})


ARRAY = {"type": "array", "items": {"type": "object"}}
HTML_PAGE = _content(HTML, "The page.", {"type": "string"})
TO_COOKIE = {
    "description": "`?token=` became the dashboard's cookie: the same page, without it.",
    "headers": {"Location": {"schema": {"type": "string"}}},
}


def operation(
    summary: str,
    ok: dict[str, Any],
    *errors: str,
    security: Security | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An operation answering ``ok`` or one of ``errors`` (statuses, or ``"404: why"``)."""
    responses: dict[str, Any] = dict(ok)
    if security != PUBLIC and "401" not in responses:
        responses["401"] = {"$ref": "#/components/responses/Unauthorized"}
    for error in (*errors, "431"):
        status, _, why = error.partition(": ")
        responses[status] = _problem(why or ERRORS[status])
    found = {"summary": summary, "responses": responses, **extra}
    if security is not None:
        found["security"] = security
    return found


def _gateway(parameters: Parameters) -> dict[str, Any]:
    bus_topic = [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
        for n in ("bus", "topic")
    ]
    cloudevents = {
        "application/cloudevents+json": {"schema": _ref("CloudEvent")},
        "application/cloudevents-batch+json": {"schema": _ref("CloudEventBatch")},
    }  # fmt: skip
    return {
        "/events": {"post": operation(
            "Publish CloudEvents (binary, structured or batch mode).",
            {"202": _json("Accepted and durable.", _ref("Accepted"))},
            "400: Not a valid CloudEvent.", "404: No such bus.", "413", "415", "503",
            description="202 once durably on the bus. An event without `traceparent` starts"
            " a new trace (CloudEvents distributed-tracing extension). Binary mode works too:"
            " any content type, the attributes in `ce-*` headers (the CloudEvents HTTP"
            " binding); it is not described here, as its headers depend on the event.",
            parameters=bus_topic, requestBody={"required": True, "content": cloudevents})},
        "/healthz": {"get": operation("Liveness of the gateway.", {"200": _json("Up.")},
                                      security=PUBLIC)},
        "/metrics": {"get": operation("Prometheus metrics (text exposition format).", {
            "200": _content("text/plain; version=0.0.4", "The metrics.", {"type": "string"})})},
        "/api/status": {"get": operation(
            "What is running: functions, replicas, triggers, sources, consumer groups, the last reload.",
            {"200": _json("The platform's state.")}, "503")},
        "/api/events": {"get": operation(
            "Events of a topic in offset order (not leased).", {"200": _json("Messages.", ARRAY)},
            "400", "404: No such bus.", "501", "503",
            parameters=parameters(models.EventsQuery))},
        "/api/replay": {"post": operation(
            "Deliver a trigger's (or every trigger's on a topic) events again.",
            {"200": _json("How many events will be delivered again.", _ref("Replayed"))},
            "400", "404: No such trigger, bus or topic.",
            "409: The start is outside the topic: an offset past its end, or a time to come.",
            "413", "415: The body is not application/json.", "501", "503",
            requestBody={"required": True, "content": {JSON: {"schema": _ref("Replay")}}})},
        "/api/openapi.json": {"get": operation("This document.", {"200": _json("OpenAPI 3.1.")})},
    }  # fmt: skip


def _functions() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    path = {**name, "name": "path"}

    def call(method: str, params: list[dict[str, Any]]) -> dict[str, Any]:
        return operation(
            f"{method.upper()} to a function's own HTTP endpoint.",
            {"default": {"description": "Whatever the function answers, in its own content"
                         " type (a functions-framework function answers as under"
                         " functions-framework)."}},
            "404: No such function.",
            "502: The worker dropped the request.", "503: The function's worker could not start.",
            "504: The function did not answer in time.",
            security=OPTIONAL_TOKEN, parameters=params,
            description="A service function is proxied (its worker cold-started if needed);"
            " a job function takes one CloudEvent and answers when the run ends (400, 413 or"
            " 415 problem+json when the request is not one valid CloudEvent). With"
            " `CUMULO_API_TOKEN` set, a function needs the token unless its spec says"
            " `access: public`.",
        )  # fmt: skip

    methods = ("get", "post", "put", "patch", "delete", "options")
    return {
        "/fn/{name}": {m: call(m, [name]) for m in methods},
        "/fn/{name}/{path}": {m: call(m, [name, path]) for m in methods},
    }


def _sources() -> dict[str, Any]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    path = {**name, "name": "path"}

    def receive(params: list[dict[str, Any]]) -> dict[str, Any]:
        return {"post": operation(
            "A webhook or git source's deliveries (checked by the source's own secret).",
            {"202": _json("On the bus (or left out by the source's filters: `note`)."),
             "401": _problem("No signature or token, or a signed timestamp out of tolerance."),
             "403": _problem("A wrong signature or token.")},
            "400: Malformed, or fields of the wrong type.", "404: No such source or path.",
            "413", "415", "503", security=PUBLIC, parameters=params)}  # fmt: skip

    return {"/sources/{name}": receive([name]), "/sources/{name}/{path}": receive([name, path])}


def _dashboard_api(parameters: Parameters) -> dict[str, Any]:
    run_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    dead_letters = parameters(models.DeadLettersQuery)
    return {
        "/api/functions": {"get": operation(
            "Functions: live replicas, invocations, errors, cold starts.", {"200": _json("OK.", ARRAY)},
            "503")},
        "/api/graph": {"get": operation(
            "The event flow: sources, event types, functions; counts on edges.",
            {"200": _json("OK.")}, "503")},
        "/api/events/search": {"get": operation(
            "Events matching filters, newest first, each with the runs it started and the"
            " events it caused.", {"200": _json("OK.", ARRAY)}, "400", "404: No such bus.",
            "501", "503", parameters=parameters(models.SearchQuery))},
        "/api/runs": {"get": operation(
            "Job runs, newest first, with their progress.", {"200": _json("OK.", ARRAY)}, "400",
            "503", parameters=parameters(models.RunsQuery))},
        "/api/runs/{id}": {"get": operation(
            "One run.", {"200": _json("OK.")}, "404: No such run.", "503", parameters=[run_id])},
        "/api/runs/{id}/log": {"get": operation(
            "The tail of a run's log.", {"200": _content("text/plain", "The log.", {"type": "string"})},
            "404: No such run.", parameters=[run_id])},
        "/api/models": {"get": operation(
            "Models: versions, stages, metrics, lineage, champion history.",
            {"200": _json("OK.", ARRAY)})},
        "/api/dead-letters": {"get": operation(
            "Dead-lettered events with the reason (`cumulo*` extensions) and their redrive,"
            " newest first.", {"200": _json("OK.", ARRAY)}, "400", "404: No such bus.", "501",
            "503", parameters=dead_letters)},
        "/api/dead-letters/{offset}/redrive": {"post": operation(
            "Publish a dead letter's original event again (reason stripped, dedup off) to its"
            " trigger's topic; idempotent per dead letter.",
            {"200": _json("Redriven (now or before: `alreadyRedriven`).", _ref("Redrive"))},
            "400", "404: No such bus, or no dead letter at that offset.", "501", "503",
            parameters=[*parameters(models.RedrivePath, "path"), *dead_letters])},
    }  # fmt: skip


def _dashboard_pages(parameters: Parameters) -> dict[str, Any]:
    token = parameters(models.PageQuery)
    run_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    static = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}

    def page(summary: str, *errors: str, params: list[dict[str, Any]] | None = None) -> Any:
        return {"get": operation(summary, {"200": HTML_PAGE, "303": TO_COOKIE}, "400", *errors, "503",
                                 security=DASHBOARD, parameters=[*(params or []), *token])}  # fmt: skip

    return {
        "/ui": {"get": operation("The dashboard's home, at `/ui/`.", {"307": {
            "description": "To `/ui/`.", "headers": {"Location": {"schema": {"type": "string"}}}}},
            security=DASHBOARD)},
        "/ui/": page("Functions, triggers and sources."),
        "/ui/graph": page("The event flow."),
        "/ui/events": page("Search events.", "404: No such bus.", "501",
                           params=parameters(models.SearchQuery)),
        "/ui/runs": page("Job runs.", params=parameters(models.RunsQuery)),
        "/ui/runs/{id}": page("One run and its log.", "404: No such run.", params=[run_id]),
        "/ui/models": page("Models and their lineage."),
        "/ui/dead-letters": page("Dead letters, redrive and replay.", "404: No such bus.",
                                 "501", params=parameters(models.DeadLettersQuery)),
        "/ui/static/{name}": {"get": operation("The dashboard's CSS and JS.", {"200": {
            "description": "The file.", "content": {"text/css": {"schema": {"type": "string"}},
                                                    "text/javascript": {"schema": {"type": "string"}}}}},
            "404: No such file.", security=DASHBOARD, parameters=[static])},
    }  # fmt: skip


def _dapr() -> dict[str, Any]:
    trigger = {"name": "trigger", "in": "path", "required": True, "schema": {"type": "string"}}
    status = {"type": "object", "properties": {"status": {"enum": ["SUCCESS", "RETRY", "DROP"]}}}
    return {
        "/dapr/subscribe": {"get": operation(
            "Dapr's app callback: programmatic subscriptions (none: they are declarative).",
            {"200": _json("No subscriptions.", ARRAY)}, security=PUBLIC)},
        "/dapr/deliver/{trigger}": {"post": operation(
            "An embedded Dapr bus's sidecar delivers a trigger's event.",
            {"200": _json("What Dapr should do with the event.", status),
             "401": _json("No or wrong `dapr-api-token`.", status),
             "404": _json("No such trigger.", status)},
            "413", security=[{"daprToken": []}], parameters=[trigger])},
    }  # fmt: skip


def paths(parameters: Parameters) -> dict[str, Any]:
    """Every path of the gateway, ``parameters`` making OpenAPI parameters of a model."""
    return {
        **_gateway(parameters),
        **_functions(),
        **_sources(),
        **_dashboard_api(parameters),
        **_dashboard_pages(parameters),
        **_dapr(),
    }
