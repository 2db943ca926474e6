"""The gateway's HTTP API as an OpenAPI 3.1 document, served at ``GET /api/openapi.json``.

Query parameters, path parameters and request bodies are generated from the
pydantic models the handlers parse requests with
(:mod:`cumulo.runtimes.local.api_models`), so the document says exactly what
is checked. Every status a route can answer is listed, with its content type:
problem+json for every refusal. ``tests/e2e/test_admin_api.py`` checks that
every route of the gateway's Starlette app is here and every operation here
is a route, and schemathesis (``tests/e2e/test_api_schemathesis.py``) checks
the answers of a live ``cumulo up`` against the document.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from cumulo.config import Settings
from cumulo.runtimes.local import api_models as models
from cumulo.runtimes.local.openapi_paths import paths

SCHEMA_REF = "#/components/schemas/{model}"


class ApiSchema(GenerateJsonSchema):
    """JSON Schema as the API takes it: no titles, and no ``null`` (leave a field out instead)."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return self.generate_inner(schema["schema"])

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _without_null_defaults(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: _without_null_defaults(value)
            for key, value in schema.items()
            if not (key == "default" and value is None) and key != "title"
        }
    if isinstance(schema, list):
        return [_without_null_defaults(item) for item in schema]
    return schema


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema, as the API validates it."""
    schema = model.model_json_schema(
        by_alias=True, ref_template=SCHEMA_REF, schema_generator=ApiSchema
    )
    return dict(_without_null_defaults(schema))


def parameters(model: type[BaseModel], where: str = "query") -> list[dict[str, Any]]:
    """One OpenAPI parameter per field of a query or path model."""
    schema = json_schema(model)
    required = set(schema.get("required", ()))
    found = []
    for name, field in schema["properties"].items():
        field = dict(field)
        description = field.pop("description", "")
        found.append(
            {
                "name": name,
                "in": where,
                "required": where == "path" or name in required,
                "description": description,
                "schema": field,
            }
        )
    return found


# CloudEvents 1.0 as the gateway checks it (cumulo.events.attributes), in ECMA-262 patterns.
# (Lone surrogates are refused too, but a pattern cannot name them: JSON Schema validators
# built on Rust's regex reject the range.)
CE_STRING = "^[^\\u0000-\\u001f\\u007f-\\u009f\\ufdd0-\\ufdef\\ufffe\\uffff]*$"
URI_CHARS = '(?:[^\\s"<>\\\\^`{|}%]|%[0-9A-Fa-f]{2})*'
SCHEME = "[A-Za-z][A-Za-z0-9+.-]*:"
TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+"
QUOTED = '"(?:[^"\\\\\\u0000-\\u0008\\u000a-\\u001f\\u007f]|\\\\[^\\u0000-\\u0008\\u000a-\\u001f\\u007f])*"'
MEDIA_TYPE = f"^{TOKEN}/{TOKEN}(?:[ \\t]*;[ \\t]*(?:{TOKEN}=(?:{TOKEN}|{QUOTED}))?)*[ \\t]*$"
_LIMITS = Settings.model_fields
ATTRIBUTE_CHARS = int(_LIMITS["max_attribute_bytes"].default) // 4  # UTF-8: up to 4 bytes each


def _string(*patterns: str, least: int = 0) -> dict[str, Any]:
    checks = [{"pattern": pattern} for pattern in (CE_STRING, *patterns)]
    return {"type": "string", "minLength": least, "maxLength": ATTRIBUTE_CHARS, "allOf": checks}


CLOUD_EVENT = {
    "type": "object",
    "description": "CloudEvents 1.0, JSON format; extensions: 1-20 lowercase letters or"
    " digits, a string, boolean or 32-bit integer each.",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": _string(least=1),
        "source": _string(f"^(?:{SCHEME}|(?![^/?#]*:)){URI_CHARS}$", least=1),
        "type": _string(least=1),
        "subject": _string(),
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": _string(MEDIA_TYPE),
        "dataschema": _string(f"^{SCHEME}{URI_CHARS}$"),
        "data": {"description": "Any JSON value (nesting bounded by the gateway)."},
        "traceparent": _string(),
        "tracestate": _string(),
    },
    "propertyNames": {"pattern": "^[a-z0-9]{1,20}$"},
    "additionalProperties": {
        "anyOf": [
            _string(),
            {"type": "boolean"},
            {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
        ]
    },
    "maxProperties": int(_LIMITS["max_event_attributes"].default) + 1,  # + data
}
BATCH = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/CloudEvent"},
    "maxItems": int(_LIMITS["max_batch_events"].default),
}
PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errorType": {"type": "string", "description": "The exception's class name."},
        "problems": {
            "type": "array",
            "description": "400: every broken rule (field, where, rule, message).",
        },
    },
    "required": ["title", "status"],
}
SCHEMAS: dict[str, Any] = {
    "Problem": PROBLEM,
    "CloudEvent": CLOUD_EVENT,
    "CloudEventBatch": BATCH,
    "Accepted": {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "ids": {"type": "array", "items": {"type": "string"}},
            "offsets": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Replayed": {
        "type": "object",
        "properties": {"replayed": {"type": "integer", "minimum": 0}},
        "required": ["replayed"],
    },
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
BODIES = (models.Replay,)


def components() -> dict[str, Any]:
    schemas = dict(SCHEMAS)
    for model in BODIES:
        schema = json_schema(model)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    problem_content = {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
    return {
        "schemas": schemas,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "uiCookie": {"type": "apiKey", "in": "cookie", "name": "cumulo_token"},
            "uiToken": {"type": "apiKey", "in": "query", "name": "token"},
            "daprToken": {"type": "apiKey", "in": "header", "name": "dapr-api-token"},
        },
        "responses": {
            "Unauthorized": {
                "description": "No or wrong token (only when `CUMULO_API_TOKEN` is set).",
                "content": problem_content,
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once; the same object each time: do not change it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Cumulo gateway",
            "version": "v1alpha1",
            "description": "The HTTP API of `cumulo up`. With `CUMULO_API_TOKEN` set, every"
            " operation without `security: []` needs `Authorization: Bearer <token>`"
            " (the dashboard's pages also take its cookie, or `?token=` once).",
        },
        "security": [{"bearer": []}],
        "paths": paths(parameters),
        "components": components(),
    }
