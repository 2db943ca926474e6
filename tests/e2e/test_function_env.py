"""A function's environment is what its spec declares (issue 11, hole 2).

The platform runs with an API token, a webhook source's signing secret and
cloud credentials in its environment; a service function and a job function
that return ``os.environ`` see none of them, but do see their ``spec.env``,
the secret their spec names and the worker's own settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform, cloudevent

TOKEN = "api-t0ken-never-shown"
PLATFORM_ENV = {
    "CUMULO_API_TOKEN": TOKEN,
    "HOOK_SECRET": "hook-s1gning-key",  # the webhook source's secret
    "AWS_SECRET_ACCESS_KEY": "aws-s3cret",  # the platform's cloud credentials
    "DB_PASSWORD": "db-pa55word",  # a secret the functions name
}
FUNCTIONS = """
import os
import functions_framework

@functions_framework.http
def show(request):
    return dict(os.environ)

@functions_framework.cloud_event
def show_in_job(event):
    from cumulo.events.event import new_event
    from cumulo.functions.context import FunctionContext

    FunctionContext.current().publish(new_event("test.progress", "show-in-job", {"step": 1}))
    return {"type": "test.environment", "data": dict(os.environ)}
"""
FUNCTION = """\
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {{name: {name}}}
spec:
  handler: main:{handler}
  mode: {mode}
  params: {{color: blue}}
  env: {{GREETING: hello}}
  secrets: [{{name: db, key: password}}]
---
"""
SOURCE = """\
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: hook}
spec:
  webhook: {auth: hmac, secret: {name: hook, env: HOOK_SECRET}}
  type: com.example.order.placed
"""
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def platform(platform_factory, tmp_path: Path) -> RunningPlatform:
    spec = (
        FUNCTION.format(name="show", handler="show", mode="service")
        + FUNCTION.format(name="show-in-job", handler="show_in_job", mode="job")
        + SOURCE
    )
    project = write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": spec})
    return platform_factory(project, env=PLATFORM_ENV)


def assert_only_what_the_spec_declares(env: dict[str, Any], function: str) -> None:
    assert env["GREETING"] == "hello"  # spec.env
    assert env["DB_PASSWORD"] == PLATFORM_ENV["DB_PASSWORD"]  # spec.secrets
    assert env["CUMULO_FUNCTION"] == function
    assert json.loads(env["CUMULO_PARAMS"]) == {"color": "blue"}
    assert "PATH" in env and "CUMULO_STATE_DIR" in env and "CUMULO_PROJECT_DIR" in env
    for name in ("CUMULO_API_TOKEN", "HOOK_SECRET", "AWS_SECRET_ACCESS_KEY"):
        assert name not in env
    for secret in (TOKEN, PLATFORM_ENV["HOOK_SECRET"], PLATFORM_ENV["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in json.dumps(env)
    platform_settings = {n for n in env if n.startswith("CUMULO_")}
    assert platform_settings == {
        "CUMULO_FUNCTION",
        "CUMULO_PARAMS",
        "CUMULO_PROJECT_DIR",
        "CUMULO_STATE_DIR",
        "CUMULO_PUBLISH_TOKEN",  # publish-only: see the test below
    }


def test_a_service_function_sees_only_what_its_spec_declares(platform: RunningPlatform):
    answer = platform.request("GET", "/fn/show", headers=AUTH)

    assert answer.status == 200
    assert_only_what_the_spec_declares(answer.json(), "show")


def test_a_job_function_sees_only_what_its_spec_declares(platform: RunningPlatform):
    event = json.dumps(cloudevent("test.show", {}, id="e1")).encode()
    headers = {**AUTH, "Content-Type": "application/cloudevents+json"}

    answer = platform.request("POST", "/fn/show-in-job", event, headers)

    assert answer.status == 200, answer.body
    assert answer.headers["ce-type"] == "test.environment"
    assert_only_what_the_spec_declares(answer.json(), "show-in-job")
    listed = platform.request("GET", "/api/events", headers=AUTH).json()
    assert "test.progress" in [m["event"]["type"] for m in listed]  # with its publish token


def test_a_functions_publish_token_publishes_and_opens_nothing_else(platform: RunningPlatform):
    publish_token = platform.request("GET", "/fn/show", headers=AUTH).json()["CUMULO_PUBLISH_TOKEN"]
    own = {"Authorization": f"Bearer {publish_token}"}
    event = json.dumps(cloudevent("test.progress", {"step": 1}, id="p1")).encode()

    published = platform.request(
        "POST", "/events", event, {**own, "Content-Type": "application/cloudevents+json"}
    )

    assert published.status == 202, published.body
    assert platform.request("GET", "/api/status", headers=own).status == 401
    assert platform.request("GET", "/api/events", headers=own).status == 401
    assert platform.request("GET", "/fn/show", headers=own).status == 401
    assert platform.request("GET", "/metrics", headers=own).status == 401
    listed = platform.request("GET", "/api/events", headers=AUTH).json()
    assert [m["event"]["id"] for m in listed] == ["p1"]
