"""The gateway's bearer-token middleware: which routes need the API token, what else
authorises what, what a refusal says, and what a function never gets to see."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from cumulo.runtimes.local.auth import (
    BearerAuth,
    function_name,
    is_protected,
    public_functions,
)
from tests.runtimes.local.conftest import function_spec

TOKEN = "api-token-1234"
PUBLISH = "publish-token-5678"
NEEDS = "'Authorization: Bearer <token>'"


class Inner:
    """The app behind the middleware: answers 200 and keeps the scopes it was given."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    def headers(self) -> dict[str, str]:
        """The last request's headers as the inner app saw them."""
        return {k.decode(): v.decode() for k, v in self.scopes[-1]["headers"]}


def client(
    token: str | None = TOKEN, public: tuple[str, ...] = ("hello",)
) -> tuple[httpx.AsyncClient, Inner]:
    inner = Inner()
    app = BearerAuth(inner, token, public=public, publish_token=PUBLISH)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw"), inner


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_without_a_token_nothing_is_protected_and_nothing_is_removed() -> None:
    http, inner = client(token=None)
    async with http:
        for path in ("/api/status", "/events", "/fn/train/x", "/ui/", "/metrics"):
            assert (await http.get(path, headers=bearer("anything"))).status_code == 200
    assert inner.headers()["authorization"] == "Bearer anything"


@pytest.mark.parametrize(
    "path",
    [
        "/api",
        "/api/status",
        "/api/runs/r-1/log",
        "/metrics",
        "/events",
        "/ui",
        "/ui/runs",
        "/fn/train",
    ],
)
async def test_a_protected_route_without_the_token_is_refused(path: str) -> None:
    http, inner = client()
    async with http:
        answer = await http.get(path)

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="cumulo"'
    assert answer.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(answer.content)
    assert (problem["status"], problem["title"], problem["errorType"]) == (
        401,
        "Unauthorized",
        "GatewayError",
    )
    assert inner.scopes == []  # never reached


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/sources/github", "/dapr/subscribe", "/apis", "/eventsx", "/", "/fn/hello/x"],
)
async def test_public_routes_need_no_token(path: str) -> None:
    http, inner = client()
    async with http:
        assert (await http.get(path)).status_code == 200
    assert inner.scopes[-1]["path"] == path


async def test_the_api_token_opens_every_protected_route() -> None:
    http, _ = client()
    async with http:
        for path in ("/api/status", "/metrics", "/ui/", "/fn/train"):
            assert (await http.get(path, headers=bearer(TOKEN))).status_code == 200
        assert (
            await http.post("/events", headers={"authorization": f"bearer {TOKEN}"})
        ).status_code == 200


async def test_a_wrong_token_is_refused_as_invalid_without_echoing_it() -> None:
    http, _ = client()
    async with http:
        answer = await http.get("/api/status", headers=bearer("guessed-token"))

    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="cumulo", error="invalid_token"'
    assert (
        orjson.loads(answer.content)["detail"] == "the bearer token is not the platform's API token"
    )
    assert b"guessed-token" not in answer.content and TOKEN.encode() not in answer.content


async def test_a_refusal_says_which_rule_wants_the_token() -> None:
    http, _ = client()
    async with http:
        route = orjson.loads((await http.get("/api/status")).content)["detail"]
        function = orjson.loads((await http.get("/fn/train/predict")).content)["detail"]

    assert route == f"this route needs {NEEDS}"
    assert function == f"function 'train' is not public (spec.access: token): it needs {NEEDS}"


async def test_another_scheme_counts_as_no_token() -> None:
    http, _ = client()
    async with http:
        answer = await http.get("/api/status", headers={"authorization": f"Basic {TOKEN}"})

    assert answer.status_code == 401
    assert "error=" not in answer.headers["www-authenticate"]


async def test_the_publish_token_authorises_publishing_and_nothing_else() -> None:
    http, _ = client()
    async with http:
        assert (await http.post("/events", headers=bearer(PUBLISH))).status_code == 200
        assert (await http.get("/events", headers=bearer(PUBLISH))).status_code == 401
        for path in ("/api/status", "/fn/train", "/ui/"):
            assert (await http.get(path, headers=bearer(PUBLISH))).status_code == 401


async def test_the_dashboard_cookie_authorises_reads_and_changes_that_say_they_come_from_it() -> (
    None
):
    http, _ = client()
    cookie = {"cookie": f'theme=dark; cumulo_token="{TOKEN}"'}
    async with http:
        assert (await http.get("/ui/runs", headers=cookie)).status_code == 200
        assert (await http.get("/api/status", headers=cookie)).status_code == 200
        assert (
            await http.post("/api/replay", headers=cookie)
        ).status_code == 401  # a cross-site form
        changed = await http.post("/api/replay", headers={**cookie, "x-cumulo-ui": "1"})
    assert changed.status_code == 200


async def test_the_query_token_works_on_dashboard_pages_only() -> None:
    http, _ = client()
    async with http:
        assert (await http.get("/ui/", params={"token": TOKEN})).status_code == 200
        assert (await http.get("/api/status", params={"token": TOKEN})).status_code == 401


async def test_a_function_never_sees_the_platforms_credentials() -> None:
    http, inner = client()
    headers = {**bearer(TOKEN), "cookie": f"session=abc; cumulo_token={TOKEN}; lang=en"}
    async with http:
        assert (await http.get("/fn/train/x", headers=headers)).status_code == 200

    seen = inner.headers()
    assert "authorization" not in seen
    assert seen["cookie"] == "session=abc; lang=en"


async def test_a_public_function_keeps_credentials_of_its_own() -> None:
    http, inner = client()
    async with http:
        await http.get(
            "/fn/hello", headers={**bearer("the-functions-own"), "cookie": f"cumulo_token={TOKEN}"}
        )

    seen = inner.headers()
    assert seen["authorization"] == "Bearer the-functions-own"
    assert "cookie" not in seen  # only the dashboard's cookie was there: the header goes


async def test_other_routes_are_passed_on_unchanged() -> None:
    http, inner = client()
    async with http:
        await http.get("/api/status", headers={**bearer(TOKEN), "cookie": "cumulo_token=x"})

    assert inner.headers()["authorization"] == f"Bearer {TOKEN}"
    assert inner.headers()["cookie"] == "cumulo_token=x"


async def test_a_lifespan_scope_goes_through_untouched() -> None:
    inner = Inner()

    await BearerAuth(inner, TOKEN)({"type": "lifespan"}, None, None)

    assert inner.scopes == [{"type": "lifespan"}]


def test_the_public_functions_are_those_whose_spec_says_so() -> None:
    functions = [
        function_spec("hello", access="public"),
        function_spec("train"),
        function_spec("predict", access="token"),
    ]

    assert public_functions(functions) == frozenset({"hello"})


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/fn", ""),
        ("/fn/", ""),
        ("/fn/train", "train"),
        ("/fn/train/a/b", "train"),
        ("/fnx", None),
        ("/api/fn/x", None),
    ],
)
def test_the_function_a_path_names(path: str, name: str | None) -> None:
    assert function_name(path) == name


def test_a_functions_endpoint_is_protected_unless_public() -> None:
    assert is_protected("/fn/train", public={"hello"})
    assert not is_protected("/fn/hello/deep/path", public={"hello"})
    assert is_protected("/fn", public={"hello"})
    assert not is_protected("/healthz")
