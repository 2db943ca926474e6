"""The gateway's HTTP API as an OpenAPI 3.1 document, served at ``GET /api/openapi.json``.

Written by hand, next to the routes in :mod:`cumulo.runtimes.local.gateway`;
``tests/e2e/test_admin_api.py`` walks every path here against a live
``cumulo up`` so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
JSON = "application/json"
METRICS = "text/plain; version=0.0.4"
PUBLIC: list[dict[str, list[str]]] = []  # an operation's ``security`` when no token is needed


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": _ref("Problem")}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
BUS = _query("bus", "The event bus (default: `default`).", {"type": "string"})
TOPIC = _query("topic", "The topic (default: `default`).", {"type": "string"})
NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}

INGEST = {
    "post": {
        "summary": "Publish CloudEvents (binary, structured or batch mode).",
        "description": "202 once durably on the bus. An event without `traceparent` starts"
        " a new trace (CloudEvents distributed-tracing extension).",
        "parameters": [BUS, TOPIC],
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"schema": _ref("CloudEvent")},
                "application/cloudevents-batch+json": {
                    "schema": {"type": "array", "items": _ref("CloudEvent")}
                },
                "*/*": {"description": "Binary mode: attributes in `ce-*` headers."},
            },
        },
        "responses": {
            "202": _json("Accepted and durable.", _ref("Accepted")),
            "400": _problem("Not a valid CloudEvent."),
            "401": UNAUTHORIZED,
            "404": _problem("No such bus."),
            "413": _problem("The body is over the size limit."),
            "415": _problem("Not a CloudEvents content type."),
            "503": _problem("The bus cannot take events now; see `Retry-After`."),
        },
    }
}

STATUS = {
    "get": {
        "summary": "What is running: functions, replicas, triggers, sources, consumer groups.",
        "responses": {"200": _json("The platform's state.", {"type": "object"}), "401": UNAUTHORIZED},
    }
}

EVENTS = {
    "get": {
        "summary": "Events of a topic in offset order (not leased).",
        "parameters": [
            BUS,
            TOPIC,
            _query("after", "Only offsets after this one.", {"type": "integer", "minimum": 0}),
            _query("limit", "At most this many.", {"type": "integer", "minimum": 1}),
        ],
        "responses": {
            "200": _json("Messages.", {"type": "array", "items": {"type": "object"}}),
            "401": UNAUTHORIZED,
            "404": _problem("No such bus."),
        },
    }
}

REPLAY = {
    "post": {
        "summary": "Deliver a trigger's (or every trigger's on a topic) events again.",
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref("Replay")}}},
        "responses": {
            "200": _json("How many events will be delivered again.", _ref("Replayed")),
            "400": _problem("Not JSON, or not exactly one of trigger/topic and fromOffset/fromTime."),
            "401": UNAUTHORIZED,
            "404": _problem("No such bus."),
        },
    }
}

METRICS_PATH = {
    "get": {
        "summary": "Prometheus metrics (text exposition format).",
        "responses": {
            "200": {"description": "The metrics.", "content": {METRICS: {"schema": {"type": "string"}}}},
            "401": UNAUTHORIZED,
        },
    }
}

OPENAPI = {
    "get": {
        "summary": "This document.",
        "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"}), "401": UNAUTHORIZED},
    }
}

HEALTH = {
    "get": {
        "summary": "Liveness of the gateway.",
        "security": PUBLIC,
        "responses": {"200": _json("Up.", {"type": "object"})},
    }
}


def _function_operation(method: str) -> dict[str, Any]:
    return {
        "summary": f"{method.upper()} to a function's own HTTP endpoint (public).",
        "description": "A service function is proxied (its worker cold-started if needed);"
        " a job function takes one CloudEvent and answers when the run ends.",
        "security": PUBLIC,
        "parameters": [NAME],
        "responses": {
            "default": {"description": "Whatever the function answers."},
            "404": _problem("No such function."),
            "502": _problem("The worker dropped the request."),
            "503": _problem("The function's worker could not start."),
            "504": _problem("The function did not answer in time."),
        },
    }


FUNCTION = {method: _function_operation(method) for method in ("get", "post", "put", "delete")}
PATH = {**NAME, "name": "path"}
FUNCTION_PATH = {m: {**op, "parameters": [NAME, PATH]} for m, op in FUNCTION.items()}

SOURCE = {
    "post": {
        "summary": "A webhook or git source's deliveries (checked by the source's own secret).",
        "security": PUBLIC,
        "parameters": [NAME],
        "responses": {
            "200": _json("Accepted by the source.", {"type": "object"}),
            "202": _json("Accepted by the source.", {"type": "object"}),
            "401": _problem("Missing or bad signature."),
            "404": _problem("No such source."),
            "503": _problem("The bus cannot take events now."),
        },
    }
}

RUN_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
OFFSET = {"name": "offset", "in": "path", "required": True, "schema": {"type": "integer"}}
ARRAY = {"type": "array", "items": {"type": "object"}}


def _read(summary: str, schema: dict[str, Any], *params: dict[str, Any], **errors: str) -> Any:
    responses = {"200": _json("OK.", schema), "401": UNAUTHORIZED}
    return {"get": {"summary": summary, "parameters": list(params),
                    "responses": responses | {k: _problem(v) for k, v in errors.items()}}}


DEAD_LETTER_TOPIC = _query("topic", "Default: the triggers' dead-letter topic.", {"type": "string"})
SEARCH = [
    _query(name, f"Only events whose {name} contains this.", {"type": "string"})
    for name in ("type", "source", "subject")
] + [
    _query("since", "Published at or after (Unix time or ISO 8601).", {"type": "string"}),
    _query("until", "Published at or before (Unix time or ISO 8601).", {"type": "string"}),
    _query("limit", "At most this many (newest first).", {"type": "integer", "minimum": 1}),
]
DASHBOARD: dict[str, Any] = {
    "/api/functions": _read("Functions: live replicas, invocations, errors, cold starts.", ARRAY),
    "/api/graph": _read("The event flow: sources, event types, functions; counts on edges.",
                        {"type": "object"}),
    "/api/events/search": _read("Events matching filters, each with the runs it started and"
                                " the events it caused.", ARRAY, BUS, TOPIC, *SEARCH,
                                **{"404": "No such bus."}),
    "/api/runs": _read("Job runs, newest first, with their progress.", ARRAY,
                       _query("function", "Only this function's.", {"type": "string"})),
    "/api/runs/{id}": _read("One run.", {"type": "object"}, RUN_ID, **{"404": "No such run."}),
    "/api/runs/{id}/log": {"get": {"summary": "The tail of a run's log.", "parameters": [RUN_ID],
        "responses": {"200": {"description": "The log.", "content": {"text/plain": {
            "schema": {"type": "string"}}}}, "401": UNAUTHORIZED,
            "404": _problem("No such run.")}}},
    "/api/models": _read("Models: versions, stages, metrics, lineage, champion history.", ARRAY),
    "/api/dead-letters": _read("Dead-lettered events with the reason (`cumulo*` extensions)"
                               " and their redrive, newest first.", ARRAY, BUS,
                               DEAD_LETTER_TOPIC, **{"404": "No such bus."}),
    "/api/dead-letters/{offset}/redrive": {"post": {
        "summary": "Publish a dead letter's original event again (reason stripped, dedup off)"
        " to its trigger's topic; idempotent per dead letter.",
        "parameters": [OFFSET, BUS, DEAD_LETTER_TOPIC],
        "responses": {"200": _json("Redriven (now or before: `alreadyRedriven`).", _ref("Redrive")),
                      "401": UNAUTHORIZED,
                      "404": _problem("No such bus, or no dead letter at that offset.")}}},
}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
        "required": ["title", "status"],
    },
    "CloudEvent": {
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string"},
            "source": {"type": "string"},
            "type": {"type": "string"},
            "traceparent": {"type": "string", "description": "W3C trace context."},
            "tracestate": {"type": "string"},
        },
    },
    "Accepted": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "offsets": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Replay": {
        "type": "object",
        "properties": {
            "bus": {"type": "string"},
            "trigger": {"type": "string"},
            "topic": {"type": "string"},
            "fromOffset": {"type": "integer"},
            "fromTime": {"type": "number", "description": "Unix time."},
        },
    },
    "Replayed": {"type": "object", "properties": {"replayed": {"type": "integer"}}},
    "Redrive": {
        "type": "object",
        "properties": {
            "offset": {"type": "integer", "description": "The dead letter's."},
            "topic": {"type": "string", "description": "Where the event went again."},
            "newOffset": {"type": "integer"},
            "at": {"type": "number"},
            "alreadyRedriven": {"type": "boolean"},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Cumulo gateway",
        "version": "v1alpha1",
        "description": "The HTTP API of `cumulo up`. With `CUMULO_API_TOKEN` set, every"
        " operation without `security: []` needs `Authorization: Bearer <token>`.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/events": INGEST,
        "/healthz": HEALTH,
        "/metrics": METRICS_PATH,
        "/api/status": STATUS,
        "/api/events": EVENTS,
        "/api/replay": REPLAY,
        "/api/openapi.json": OPENAPI,
        "/fn/{name}": FUNCTION,
        "/fn/{name}/{path}": FUNCTION_PATH,
        "/sources/{name}": SOURCE,
        **DASHBOARD,
    },
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Unauthorized": {
                **_problem("No or wrong bearer token (only when a token is configured)."),
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            }
        },
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document (the same object each time: do not change it)."""
    return DOCUMENT
