"""Who may reach what: `/fn/*` under the API token, loopback by default, Dapr's app token.

Against a real `cumulo up`, and real `cumulo worker` / `cumulo source run`
processes; where a process listens is read from the kernel (/proc/net/tcp*).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform, cloudevent, wait_for
from tests.servers.broker import free_port

TOKEN = "platform-api-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STRUCTURED = {"Content-Type": "application/cloudevents+json"}
MAIN = """
import os


def echo(request):
    return {"authorization": request.headers.get("Authorization"),
            "cookie": request.headers.get("Cookie"),
            "secret": os.environ.get("MODEL_STORE_TOKEN")}


def shop(request):
    return "open for everyone"


def batch(event):
    return {"type": "test.batch.done", "data": {"n": event.data["n"] * 2}}


def consume(event):
    return None
"""
SPECS = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: echo}
spec: {handler: "main:echo", signature: http, secrets: [{env: MODEL_STORE_TOKEN}]}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: shop}
spec: {handler: "main:shop", signature: http, access: public}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: batch}
spec: {handler: "main:batch", signature: cloudevent, mode: job, timeout: 30s}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: hook}
spec: {webhook: {path: /}, type: test.hook}
"""


def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "p", {"main.py": MAIN, "cumulo.yaml": SPECS})


def up(platform_factory, tmp_path: Path) -> RunningPlatform:
    env = {"CUMULO_API_TOKEN": TOKEN, "MODEL_STORE_TOKEN": "model-store-s3cret"}
    return platform_factory(project(tmp_path), env=env)


def run_job(platform: RunningPlatform, headers: dict[str, str]):
    body = json.dumps(cloudevent("test.batch", {"n": 21}, id="b-1")).encode()
    return platform.request("POST", "/fn/batch", body, {**STRUCTURED, **headers}, timeout=60)


def test_a_job_function_needs_the_token(platform_factory, tmp_path):
    platform = up(platform_factory, tmp_path)

    anonymous = run_job(platform, {})
    wrong = run_job(platform, {"Authorization": "Bearer guess"})
    allowed = run_job(platform, AUTH)

    assert anonymous.status == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "function 'batch' is not public (spec.access: token)" in anonymous.json()["detail"]
    assert wrong.status == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert allowed.status == 200, allowed.body
    assert allowed.headers["ce-type"] == "test.batch.done" and json.loads(allowed.body) == {"n": 42}


def test_only_a_public_function_answers_without_the_token(platform_factory, tmp_path):
    platform = up(platform_factory, tmp_path)

    assert platform.request("GET", "/fn/shop").body == b"open for everyone"
    assert platform.request("GET", "/fn/shop/any/path").status == 200
    assert platform.request("GET", "/fn/echo").status == 401
    assert platform.request("GET", "/fn/echo/shop").status == 401  # the name is the first segment
    assert platform.request("GET", "/fn/nope").status == 401  # no answer says what exists
    assert platform.request("GET", "/fn/echo", headers=AUTH).status == 200


def test_the_platform_token_never_reaches_a_function(platform_factory, tmp_path):
    platform = up(platform_factory, tmp_path)
    env = {**os.environ, "CUMULO_STATE_DIR": str(platform.state), "CUMULO_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "cumulo", "invoke", "echo", "--dir", str(platform.project)]

    invoked = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    cookie = {**AUTH, "Cookie": f"theme=dark; cumulo_token={TOKEN}"}
    seen = platform.request("GET", "/fn/echo", headers=cookie).json()

    assert invoked.returncode == 0, invoked.stderr
    assert TOKEN not in invoked.stdout
    assert json.loads(invoked.stdout)["authorization"] is None
    assert seen["authorization"] is None and seen["cookie"] == "theme=dark"


def test_a_secret_named_by_its_variable_reaches_the_function(platform_factory, tmp_path):
    platform = up(platform_factory, tmp_path)
    seen = platform.request("GET", "/fn/echo", headers=AUTH).json()
    assert seen["secret"] == "model-store-s3cret"


def test_an_embedded_dapr_delivery_without_the_sidecars_token_is_refused(
    platform_factory, tmp_path
):
    platform = up(platform_factory, tmp_path)
    body = json.dumps(cloudevent("test.forged", {"n": 1}, id="f-1")).encode()
    for token in (None, "guess", "\u00ff" * 32):
        headers = {**STRUCTURED, **({"dapr-api-token": token} if token else {})}
        answer = platform.request("POST", "/dapr/deliver/any", body, headers)
        assert answer.status == 401, (token, answer.body)
        assert answer.json()["status"] == "DROP"


# --- processes of their own: loopback unless told otherwise ---------------------------


def listening_addresses(port: int) -> set[str]:
    """The addresses the kernel has a listening TCP socket on ``port`` for."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path("/proc/net", table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntop(family, _kernel_order(bytes.fromhex(address))))
    return found


def _kernel_order(raw: bytes) -> bytes:
    """/proc/net/tcp* print addresses as 32-bit words in host (little-endian) order."""
    return b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))


@contextmanager
def started(args: list[str], tmp_path: Path, **env: str) -> Iterator[int]:
    """Run `cumulo ARGS --port P` (without CUMULO_HOST) until the block ends; yields P."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "CUMULO_HOST"}
    environment |= {"CUMULO_STATE_DIR": str(tmp_path / "state"), **env}
    command = [sys.executable, "-m", "cumulo", *args, "--port", str(port)]
    with open(tmp_path / f"{args[0]}.out", "wb") as out:
        process = subprocess.Popen(command, env=environment, stdout=out, stderr=out)
    try:
        wait_for(lambda: listening_addresses(port), timeout=30, what=f"cumulo {args[0]}")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_cumulo_worker_listens_on_loopback_only_by_default(tmp_path):
    folder = project(tmp_path)
    with started(["worker", "--target", "main:shop", "--source", str(folder)], tmp_path) as port:
        assert listening_addresses(port) == {"127.0.0.1"}
    args = ["worker", "--target", "main:shop", "--source", str(folder), "--host", "0.0.0.0"]
    with started(args, tmp_path) as port:  # what the rendered manifests pass
        assert listening_addresses(port) == {"0.0.0.0"}


def test_cumulo_source_run_listens_on_loopback_only_by_default(tmp_path):
    folder = project(tmp_path)
    with started(["source", "run", "hook", "--dir", str(folder)], tmp_path) as port:
        assert listening_addresses(port) == {"127.0.0.1"}


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_worker_with_an_app_token_refuses_dapr_callbacks_without_it(tmp_path):
    folder = project(tmp_path)
    args = ["worker", "--target", "main:consume", "--source", str(folder), "--signature",
            "cloudevent"]  # fmt: skip
    body = json.dumps(cloudevent("test.dapr", {"n": 1}, id="d-1")).encode()
    with started(args, tmp_path, APP_API_TOKEN="dapr-app-token") as port:
        missing = post(port, "/dapr/events", body, STRUCTURED)
        wrong = post(port, "/dapr/events", body, {**STRUCTURED, "dapr-api-token": "guess"})
        right = post(port, "/dapr/events", body, {**STRUCTURED, "dapr-api-token": "dapr-app-token"})

    assert missing[0] == 401 and json.loads(missing[1])["errorType"] == "DaprTokenError"
    assert wrong[0] == 401
    assert right == (200, b'{"status":"SUCCESS"}')
