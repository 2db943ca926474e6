"""The gateway's OpenAPI document: well formed, complete in what every operation can answer,
and saying what the models and the edge check (the same bodies pass or fail both)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from cumulo.config import Settings
from cumulo.errors import InvalidEventError
from cumulo.events.event import from_envelope
from cumulo.runtimes.local import openapi
from cumulo.runtimes.local.api_models import (
    MAX_EVENTS_PAGE,
    MAX_OFFSET,
    EventsQuery,
    RedrivePath,
    Replay,
)
from cumulo.runtimes.local.http import edge_rules
from cumulo.runtimes.local.openapi import document, json_schema, parameters
from cumulo.runtimes.local.openapi_paths import ERRORS

METHODS = ("get", "post", "put", "patch", "delete", "options")


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            assert method in METHODS, (path, method)
            yield path, method, operation


def walk(node: Any) -> Iterator[tuple[Any, Any]]:
    """Every (key, value) pair anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def resolve(pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = document()
    for part in pointer[2:].split("/"):
        node = node[part]
    return node


def test_the_document_is_openapi_3_1_and_built_once() -> None:
    assert document() is document()
    assert document()["openapi"] == "3.1.0"
    assert document()["security"] == [{"bearer": []}]
    assert document()["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
    }


def test_every_reference_resolves() -> None:
    refs = [value for key, value in walk(document()) if key == "$ref"]

    assert refs  # the document does use them
    for ref in refs:
        assert resolve(ref) is not None


def test_no_schema_has_titles_or_null_defaults() -> None:
    schemas = document()["components"]["schemas"]

    assert not [value for key, value in walk(schemas) if key == "title" and isinstance(value, str)]
    assert not [value for key, value in walk(schemas) if key == "default" and value is None]
    assert not [value for key, value in walk(schemas) if key == "type" and value == "null"]


def test_every_operation_documents_a_head_over_the_limits() -> None:
    for path, method, operation in operations():
        answer = operation["responses"]["431"]
        assert answer["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }, (path, method)


def test_every_operation_that_needs_the_token_documents_its_refusal() -> None:
    public = {path for path, _, operation in operations() if operation.get("security") == []}
    unauthorized = {"$ref": "#/components/responses/Unauthorized"}

    assert public == {"/healthz", "/sources/{name}", "/sources/{name}/{path}", "/dapr/subscribe"}
    for path, method, operation in operations():
        refusal = operation["responses"].get("401")
        if path in public:
            assert refusal != unauthorized, (
                path,
                method,
            )  # a source's 401 is its own signature check
        elif not path.startswith("/dapr/"):
            assert refusal == unauthorized, (path, method)


def test_every_503_says_when_to_try_again() -> None:
    unavailable = [op["responses"]["503"] for _, _, op in operations() if "503" in op["responses"]]
    bus_down = [answer for answer in unavailable if answer["description"] == ERRORS["503"]]

    assert len(bus_down) > 10  # every route that reads or writes the bus
    for answer in bus_down:
        assert answer["headers"]["Retry-After"] == {"schema": {"type": "string"}}


def test_every_function_method_is_documented_with_the_functions_own_access() -> None:
    for path in ("/fn/{name}", "/fn/{name}/{path}"):
        item = document()["paths"][path]
        assert sorted(item) == sorted(METHODS)
        assert all(op["security"] == [{}, {"bearer": []}] for op in item.values())


def test_query_parameters_come_from_the_model_with_its_bounds() -> None:
    [operation] = [op for path, _, op in operations() if path == "/api/events"]
    found = {p["name"]: p for p in operation["parameters"]}

    assert sorted(found) == ["after", "bus", "limit", "topic"]
    assert not any(p["required"] for p in found.values())
    assert all(p["in"] == "query" for p in found.values())
    assert found["limit"]["schema"]["maximum"] == MAX_EVENTS_PAGE
    assert found["limit"]["schema"]["minimum"] == 1
    assert found["after"]["schema"]["maximum"] == MAX_OFFSET
    assert found["limit"]["description"] == EventsQuery.model_fields["limit"].description


def test_path_parameters_are_always_required() -> None:
    [offset] = parameters(RedrivePath, "path")

    assert (offset["name"], offset["in"], offset["required"]) == ("offset", "path", True)


def test_the_replay_body_is_the_models_schema_by_its_wire_names() -> None:
    schema = json_schema(Replay)

    assert sorted(schema["properties"]) == ["bus", "fromOffset", "fromTime", "topic", "trigger"]
    assert schema["additionalProperties"] is False
    assert document()["components"]["schemas"]["Replay"] == schema


def validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator of one component schema, its references resolved in the document."""
    root = {"$ref": f"#/components/schemas/{name}", "components": document()["components"]}
    return jsonschema.Draft202012Validator(root)


REPLAYS = [
    {"trigger": "billing", "fromOffset": 0},
    {"topic": "orders", "fromTime": 1714564800.5, "bus": "kafka"},
    {"topic": "orders", "fromTime": "2024-05-01T12:00:00Z"},
    {"trigger": "billing", "fromOffset": 7.0},
    {"trigger": "billing", "fromOffset": 7.5},
    {"trigger": "billing", "fromOffset": -1},
    {"trigger": "billing", "fromOffset": MAX_OFFSET + 1},
    {"trigger": "billing", "fromOffset": "7"},
    {"trigger": "billing", "fromOffset": True},
    {"trigger": "billing", "topic": "orders", "fromOffset": 1},
    {"fromOffset": 1},
    {"trigger": "billing"},
    {"trigger": "billing", "fromOffset": 1, "fromTime": 1},
    {"trigger": "billing", "fromOffset": 1, "bus": None},
    {"trigger": "", "fromOffset": 1},
    {"trigger": "t" * 257, "fromOffset": 1},
    {"trigger": "billing", "fromOffset": 1, "extra": True},
    {"topic": "orders", "fromTime": False},
    [],
]


@pytest.mark.parametrize("body", REPLAYS, ids=lambda body: str(body)[:60])
def test_a_replay_body_is_valid_by_the_document_exactly_when_the_model_takes_it(body: Any) -> None:
    try:
        Replay.model_validate(body)
        taken = True
    except ValueError:
        taken = False

    assert validator("Replay").is_valid(body) == taken


def event(**attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "/shop",
        "type": "order.placed",
        **attributes,
    }


EVENTS = [
    event(),
    event(data={"n": 1}, subject="o-1", datacontenttype="application/json"),
    event(time="2024-05-01T12:00:00Z", dataschema="https://example.com/s.json"),
    event(tenant="acme", priority=3, urgent=True),
    {key: value for key, value in event().items() if key != "source"},
    event(id=""),
    event(specversion="2.0"),
    event(Tenant="acme"),
    event(tenant={"nested": True}),
    event(priority=2**31),
    event(subject="line\nbreak"),
    event(datacontenttype="not a media type"),
    event(dataschema="relative/path"),
    event(source="has space"),
    event(id="x" * 4097),
    "not an object",
]


@pytest.mark.parametrize("envelope", EVENTS, ids=lambda e: str(e)[-50:])
def test_an_event_is_valid_by_the_document_exactly_when_the_edge_takes_it(envelope: Any) -> None:
    try:
        from_envelope(envelope, edge_rules(Settings()))
        taken = True
    except InvalidEventError:
        taken = False

    assert validator("CloudEvent").is_valid(envelope) == taken


def test_a_batch_is_documented_with_the_edges_event_limit() -> None:
    batch = document()["components"]["schemas"]["CloudEventBatch"]

    assert batch["maxItems"] == Settings().max_batch_events
    assert batch["items"] == {"$ref": "#/components/schemas/CloudEvent"}
    assert validator("CloudEventBatch").is_valid([event(), event(id="e-2")])
    assert not validator("CloudEventBatch").is_valid([event(id="")])


def test_the_document_lists_the_attribute_limit_the_edge_applies() -> None:
    limit = Settings().max_attribute_bytes // 4

    assert limit == openapi.ATTRIBUTE_CHARS
    assert (
        document()["components"]["schemas"]["CloudEvent"]["properties"]["id"]["maxLength"] == limit
    )
