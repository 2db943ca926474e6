"""The gateway's API: its OpenAPI document tells the truth, and the token protects it."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cumulo.client import Client, GatewayError
from cumulo.config import Settings
from cumulo.runtimes.local.openapi import document
from cumulo.runtimes.local.platform import Platform
from cumulo.spec.load import load_project
from tests.e2e.conftest import write_project
from tests.e2e.platform import Answer, RunningPlatform, cloudevent

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROJECT = {
    "main.py": "def hello(request):\n    return 'hello'\n",
    "cumulo.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: hello}\n"
    "spec: {handler: 'main:hello', access: public}\n",
}
EVENT = json.dumps(cloudevent("test.hello", {"x": 1}, id="h-1")).encode()
STRUCTURED = {"Content-Type": "application/cloudevents+json"}

JSON = {"Content-Type": "application/json"}
FN_METHODS = ("get", "post", "put", "patch", "delete", "options")

# One or more real requests per documented operation: (method, path, body, headers).
PROBES: dict[tuple[str, str], list[tuple[str, bytes | None, dict[str, str]]]] = {
    ("post", "/events"): [
        ("/events", EVENT, STRUCTURED),
        ("/events", b"{nope", STRUCTURED),
        ("/events?bus=nope", EVENT, STRUCTURED),
        ("/events", b"<e/>", {"Content-Type": "application/cloudevents+xml"}),
    ],
    ("get", "/healthz"): [("/healthz", None, {})],
    ("get", "/metrics"): [("/metrics", None, {})],
    ("get", "/api/status"): [("/api/status", None, {})],
    ("get", "/api/events"): [
        ("/api/events?topic=default", None, {}),
        ("/api/events?bus=x", None, {}),
        ("/api/events?after=abc", None, {}),
    ],
    ("post", "/api/replay"): [
        ("/api/replay", b'{"topic": "default", "fromOffset": 0}', JSON),
        ("/api/replay", b'{"bus": "nope", "topic": "default", "fromOffset": 0}', JSON),
        ("/api/replay", b'{"topic": "default", "fromOffset": 99}', JSON),
        ("/api/replay", b"{nope", JSON),
        ("/api/replay", b'{"topic": "default"}', JSON),
        ("/api/replay", b'{"topic": "default", "fromOffset": 0}', {"Content-Type": "text/plain"}),
        ("/api/replay", b"[" * 70_000, JSON),
    ],
    ("get", "/api/openapi.json"): [("/api/openapi.json", None, {})],
    **{(m, "/fn/{name}"): [("/fn/hello", b"", {}), ("/fn/nope", b"", {})] for m in FN_METHODS},
    **{(m, "/fn/{name}/{path}"): [("/fn/hello/a/b", b"", {}), ("/fn/hello/a%0Ab", b"", {})]
       for m in FN_METHODS},
    ("post", "/sources/{name}"): [("/sources/nope", b"{}", JSON)],
    ("post", "/sources/{name}/{path}"): [("/sources/nope/a", b"{}", JSON)],
    ("get", "/api/functions"): [("/api/functions", None, {})],
    ("get", "/api/graph"): [("/api/graph", None, {})],
    ("get", "/api/events/search"): [
        ("/api/events/search?type=test", None, {}),
        ("/api/events/search?bus=x", None, {}),
        ("/api/events/search?since=zzz", None, {}),
    ],
    ("get", "/api/runs"): [("/api/runs", None, {}), ("/api/runs?limit=x", None, {})],
    ("get", "/api/runs/{id}"): [("/api/runs/nope", None, {})],
    ("get", "/api/runs/{id}/log"): [("/api/runs/nope/log", None, {})],
    ("get", "/api/models"): [("/api/models", None, {})],
    ("get", "/api/dead-letters"): [("/api/dead-letters", None, {}), ("/api/dead-letters?bus=x", None, {})],
    ("post", "/api/dead-letters/{offset}/redrive"): [
        ("/api/dead-letters/1/redrive", b"", {}),
        ("/api/dead-letters/x/redrive", b"", {}),
    ],
    ("get", "/ui"): [("/ui", None, {})],
    ("get", "/ui/"): [("/ui/", None, {})],
    ("get", "/ui/graph"): [("/ui/graph", None, {})],
    ("get", "/ui/events"): [("/ui/events?type=x", None, {}), ("/ui/events?since=zzz", None, {})],
    ("get", "/ui/runs"): [("/ui/runs", None, {}), ("/ui/runs?limit=0", None, {})],
    ("get", "/ui/runs/{id}"): [("/ui/runs/nope", None, {})],
    ("get", "/ui/models"): [("/ui/models", None, {})],
    ("get", "/ui/dead-letters"): [("/ui/dead-letters", None, {}), ("/ui/dead-letters?bus=x", None, {})],
    ("get", "/ui/static/{name}"): [("/ui/static/dashboard.css", None, {}), ("/ui/static/x", None, {})],
    ("get", "/dapr/subscribe"): [("/dapr/subscribe", None, {})],
    ("post", "/dapr/deliver/{trigger}"): [("/dapr/deliver/nope", EVENT, STRUCTURED)],
}  # fmt: skip


@pytest.fixture
def platform(platform_factory, tmp_path: Path) -> RunningPlatform:
    folder = write_project(tmp_path / "p", PROJECT)
    return platform_factory(folder, env={"CUMULO_API_TOKEN": TOKEN})


def documented(answer: Answer, operation: dict) -> None:
    """The answer's status is documented, with the documented content type."""
    responses = operation["responses"]
    described = responses.get(str(answer.status)) or responses.get("default")
    assert described is not None, f"{answer.status} is not documented: {answer.body[:200]!r}"
    if "$ref" in described:
        described = DOC_RESPONSES[described["$ref"].rsplit("/", 1)[1]]
    media = set(described.get("content", {}))
    if media and "*/*" not in media:
        essence = answer.headers.get("content-type", "").split(";")[0].strip()
        assert any(m.split(";")[0] == essence for m in media), (answer.status, essence, media)


DOC_RESPONSES: dict = {}


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a 3xx is the answer


def ask(platform: RunningPlatform, method: str, path: str, body, headers) -> Answer:
    """One request, redirects not followed (``/ui`` answers 307, ``?token=`` 303)."""
    request = urllib.request.Request(platform.url + path, body, headers, method=method)
    try:
        with urllib.request.build_opener(NoRedirects).open(request, timeout=30) as response:
            return Answer(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as e:
        return Answer(e.code, _lower(e.headers), e.read())


def _lower(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_every_documented_operation_answers_as_documented(platform: RunningPlatform):
    answer = platform.request("GET", "/api/openapi.json", headers=AUTH)
    assert answer.status == 200
    document = answer.json()
    assert document["openapi"] == "3.1.0"
    DOC_RESPONSES.update(document["components"]["responses"])
    operations = {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert operations.keys() == PROBES.keys()  # every operation probed, nothing undocumented
    for (method, _), operation in operations.items():
        security = operation.get("security", document["security"])
        for path, body, headers in PROBES[(method, _)]:
            answer = ask(platform, method.upper(), path, body, {**headers, **AUTH})
            documented(answer, operation)
            anonymous = ask(platform, method.upper(), path, body, headers)
            if {} not in security:  # not optional (/fn/*: as the function's spec says)
                assert (anonymous.status == 401) == bool(security), (path, anonymous.status)
            documented(anonymous, operation)


def route_operations(routes) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of a Starlette app; HEAD comes with GET."""
    found = set()
    for route in routes:
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)  # {path:path} -> {path}
        found |= {(m.lower(), path) for m in route.methods or () if m != "HEAD"}
    return found


def test_every_route_is_documented_and_every_operation_is_a_route(tmp_path: Path):
    project = load_project(write_project(tmp_path / "p", PROJECT))
    gateway = Platform(project, Settings(state_dir=tmp_path / "state")).gateway
    documented_operations = {
        (method, path) for path, item in document()["paths"].items() for method in item
    }
    assert route_operations(gateway.app.routes) == documented_operations


def test_protected_routes_need_the_token(platform: RunningPlatform):
    for method, path in [("GET", "/api/status"), ("GET", "/metrics"), ("POST", "/events")]:
        missing = platform.request(method, path, EVENT, STRUCTURED)
        assert missing.status == 401
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["status"] == 401
        wrong = platform.request(method, path, EVENT, {**STRUCTURED, "Authorization": "Bearer no"})
        assert wrong.status == 401
        assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert platform.request("GET", "/api/status", headers=AUTH).status == 200
    assert platform.request("GET", "/fn/hello").body == b"hello"  # access: public
    assert platform.request("GET", "/healthz").status == 200


def test_the_client_sends_the_token_from_settings(platform: RunningPlatform):
    project = platform.project
    anonymous = Client(project, settings=Settings(state_dir=platform.state))
    with pytest.raises(GatewayError, match="401"):
        anonymous.publish("test.anon")
    client = Client(project, settings=Settings(state_dir=platform.state, api_token=TOKEN))
    event = client.publish("test.client", {"n": 1})
    assert event.attributes["traceparent"].startswith("00-")  # cumulo publish starts a trace
    assert client.status()["functions"][0]["name"] == "hello"
    [stored] = [e for e in client.events() if e["event"]["type"] == "test.client"]
    assert stored["event"]["traceparent"] == event.attributes["traceparent"]
