"""How ``/api`` requests are parsed into the typed models, and what a request that does not
fit is answered: a Starlette app with the gateway's exception handlers, over ASGI."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cumulo.errors import (
    BusOperationUnsupportedError,
    BusUnavailableError,
    InvalidRequestError,
    PayloadTooLargeError,
    ReplayOutOfRangeError,
)
from cumulo.runtimes.local import api_input
from cumulo.runtimes.local.api_input import is_json, json_of
from cumulo.runtimes.local.api_models import EventsQuery, RedrivePath, Replay

BODY_LIMIT = 256


async def events(request: Request) -> Response:
    ask = api_input.query(EventsQuery, request)
    return JSONResponse(ask.model_dump())


async def redrive(request: Request) -> Response:
    return JSONResponse({"offset": api_input.path(RedrivePath, request).offset})


async def replay(request: Request) -> Response:
    ask = await api_input.body(Replay, request, BODY_LIMIT)
    return JSONResponse(ask.model_dump(by_alias=True, exclude_none=True))


RAISED: dict[str, Exception] = {
    "range": ReplayOutOfRangeError("offset 99 is past the end of topic 'orders' (last: 7)"),
    "down": BusUnavailableError("cannot reach the broker", address="nats://x:4222"),
    "cannot": BusOperationUnsupportedError("a dapr bus delivers by push: no replay"),
    "large": PayloadTooLargeError(["body of 9999 bytes is over the 256-byte limit"]),
}


async def fail(request: Request) -> Response:
    raise RAISED[request.path_params["kind"]]


APP = Starlette(
    routes=[
        Route("/api/events", events),
        Route("/api/dead-letters/{offset}/redrive", redrive, methods=["POST"]),
        Route("/api/replay", replay, methods=["POST"]),
        Route("/api/fail/{kind}", fail),
    ],
    exception_handlers=api_input.EXCEPTION_HANDLERS,  # type: ignore[arg-type]
)


@pytest.fixture
async def api() -> Any:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=APP), base_url="http://gw"
    ) as client:
        yield client


def problem_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.headers["content-type"] == "application/problem+json"
    document = orjson.loads(answer.content)
    assert document["status"] == answer.status_code
    return document


async def test_a_valid_query_is_parsed_with_its_defaults(api) -> None:
    answer = await api.get(
        "/api/events", params={"topic": "orders", "after": "5", "utm": "ignored"}
    )

    assert answer.status_code == 200
    assert answer.json() == {"bus": "default", "topic": "orders", "after": 5, "limit": 100}


async def test_a_repeated_parameter_counts_by_its_last_value(api) -> None:
    answer = await api.get("/api/events?limit=5&limit=7")

    assert answer.json()["limit"] == 7


async def test_a_bad_query_is_a_400_naming_every_field_and_rule(api) -> None:
    answer = await api.get("/api/events", params={"after": "-1", "limit": "1.5", "topic": ""})

    assert answer.status_code == 400
    problem = problem_of(answer)
    assert (problem["errorType"], problem["title"]) == ("InvalidRequestError", "Invalid request")
    found = {(p["field"], p["in"], p["rule"]) for p in problem["problems"]}
    assert found == {
        ("after", "query", "greater_than_equal"),
        ("limit", "query", "value_error"),
        ("topic", "query", "string_too_short"),
    }
    [limit] = [p for p in problem["problems"] if p["field"] == "limit"]
    assert limit["message"] == "must be a decimal integer"  # without pydantic's "Value error, "
    assert "after:" in problem["detail"] and "limit:" in problem["detail"]


async def test_a_path_parameter_is_checked_as_well(api) -> None:
    ok = await api.post("/api/dead-letters/42/redrive")
    bad = await api.post("/api/dead-letters/4x2/redrive")

    assert ok.json() == {"offset": 42}
    assert bad.status_code == 400
    assert [(p["field"], p["in"]) for p in problem_of(bad)["problems"]] == [("offset", "path")]


async def test_a_valid_body_is_parsed(api) -> None:
    answer = await api.post("/api/replay", json={"trigger": "billing", "fromOffset": 3})

    assert answer.status_code == 200
    assert answer.json() == {"trigger": "billing", "fromOffset": 3}


@pytest.mark.parametrize(
    "content_type", ["application/merge-patch+json", "Application/JSON; charset=utf-8"]
)
async def test_any_json_media_type_is_read(api, content_type: str) -> None:
    body = orjson.dumps({"topic": "orders", "fromTime": 0})

    answer = await api.post("/api/replay", content=body, headers={"content-type": content_type})

    assert answer.status_code == 200


async def test_a_body_that_is_not_json_by_its_type_is_a_415(api) -> None:
    answer = await api.post(
        "/api/replay", content=b"trigger=billing", headers={"content-type": "text/plain"}
    )

    assert answer.status_code == 415
    problem = problem_of(answer)
    assert problem["errorType"] == "UnsupportedMediaTypeError"
    assert "the body must be application/json, not 'text/plain'" in problem["detail"]


async def test_a_body_over_the_limit_is_a_413(api) -> None:
    answer = await api.post("/api/replay", json={"trigger": "b" * BODY_LIMIT, "fromOffset": 1})

    assert answer.status_code == 413
    assert problem_of(answer)["errorType"] == "PayloadTooLargeError"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON: "),
        (b'{"trigger": "t", "fromOffset": NaN}', "NaN is not a JSON number"),
    ],
    ids=["malformed", "nan"],
)
async def test_a_body_that_is_not_json_is_a_400(api, body: bytes, message: str) -> None:
    answer = await api.post(
        "/api/replay", content=body, headers={"content-type": "application/json"}
    )

    assert answer.status_code == 400
    [problem] = problem_of(answer)["problems"]
    assert (problem["field"], problem["in"], problem["rule"]) == ("body", "body", "json")
    assert message in problem["message"]


def test_json_nested_past_the_parsers_depth_is_refused_not_a_crash() -> None:
    with pytest.raises(InvalidRequestError) as refused:
        json_of(b"[" * 100_000 + b"]" * 100_000)

    assert refused.value.problems == [
        {"field": "body", "in": "body", "rule": "json", "message": "not JSON: nested too deep"}
    ]


async def test_a_body_that_breaks_the_models_rules_names_them(api) -> None:
    answer = await api.post("/api/replay", json={"trigger": "t", "fromOffset": "3"})

    problems = problem_of(answer)["problems"]
    assert answer.status_code == 400
    assert {(p["field"], p["rule"]) for p in problems} == {("fromOffset", "int_type")}


@pytest.mark.parametrize(
    ("kind", "status", "slug", "error_type"),
    [
        ("range", 409, "replay-out-of-range", "ReplayOutOfRangeError"),
        ("down", 503, "bus-unavailable", "GatewayError"),
        ("cannot", 501, "bus-operation-unsupported", "BusOperationUnsupportedError"),
        ("large", 413, "payload-too-large", "PayloadTooLargeError"),
    ],
)
async def test_errors_of_the_platform_become_their_problems(
    api, kind: str, status: int, slug: str, error_type: str
) -> None:
    answer = await api.get(f"/api/fail/{kind}")

    assert answer.status_code == status
    problem = problem_of(answer)
    assert problem["type"] == f"https://cumulo.dev/problems/{slug}"
    assert problem["errorType"] == error_type
    assert problem["detail"] == str(RAISED[kind])


async def test_an_unreachable_bus_says_when_to_try_again(api) -> None:
    answer = await api.get("/api/fail/down")

    assert answer.headers["retry-after"] == "1"
    assert problem_of(answer)["detail"] == "cannot reach the broker (nats://x:4222)"


async def test_no_route_is_a_404_problem(api) -> None:
    answer = await api.get("/api/nothing-here")

    assert answer.status_code == 404
    problem = problem_of(answer)
    assert problem["type"].endswith("/not-found") and problem["detail"] == "no such route"


async def test_a_method_the_route_does_not_take_is_a_405_with_allow(api) -> None:
    answer = await api.get("/api/replay")

    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert problem_of(answer)["type"].endswith("/method-not-allowed")


def test_big_integers_stay_exact() -> None:
    assert json_of(b'{"fromOffset": 99999999999999999999}') == {"fromOffset": 99999999999999999999}


@pytest.mark.parametrize("constant", [b"Infinity", b"-Infinity", b"NaN"])
def test_no_constant_that_json_lacks_is_read(constant: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="is not a JSON number"):
        json_of(b"[" + constant + b"]")


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        ("application/json", True),
        (" application/json ; charset=utf-8", True),
        ("application/problem+json", True),
        ("application/jsonx", False),
        ("text/json", False),
        ("", False),
    ],
)
def test_which_media_types_are_json(content_type: str, json: bool) -> None:
    assert is_json(content_type) is json
