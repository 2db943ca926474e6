"""HTTP calls through the gateway are invocations like deliveries: counted, with their errors.

Before, ``/fn/<name>`` reached into the pool for a replica and its session, and no
HTTP call was ever counted: 0 invocations after any number of calls, in
``/api/status``, the API and the dashboard.
"""

from __future__ import annotations

from tests.e2e.conftest import write_project

FUNCTION = """
import functions_framework

@functions_framework.http
def answer(request):
    if request.args.get("crash"):
        raise RuntimeError("asked to crash")
    return "fine"
"""

SPEC = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: answer}
spec: {handler: main:answer, access: public}
"""


def test_http_calls_and_their_errors_are_counted(platform_factory, tmp_path):
    project = write_project(tmp_path / "p", {"main.py": FUNCTION, "cumulo.yaml": SPEC})
    platform = platform_factory(project)
    for _ in range(3):
        assert platform.request("GET", "/fn/answer").body == b"fine"
    crashed = platform.request("GET", "/fn/answer?crash=1")
    assert (crashed.status, crashed.headers["x-google-status"]) == (500, "crash")
    counted = platform.function("answer")
    assert (counted["invocations"], counted["errors"]) == (4, 1)
