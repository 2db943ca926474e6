"""Git and generic webhook sources on a real `cumulo up`: real payloads, real signatures."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import write_project
from tests.e2e.platform import wait_for
from tests.events.sources.gitrepo import Remote

WEBHOOKS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "webhooks"
SECRETS = {"GH_SECRET": "gh-s3cret", "LAB_TOKEN": "sampleToken!", "HOOK_SECRET": "hook-key"}
SOURCES = """\
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: gh}
spec:
  git: {provider: github, branches: [master], secret: {name: gh-hook, env: GH_SECRET}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: lab}
spec:
  git: {provider: gitlab, paths: ["app/**"], secret: {name: lab, key: token}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: tea}
spec:
  git: {provider: gitea}
  sink: {function: seen}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: hook}
spec:
  webhook: {auth: hmac, maxBodyBytes: 4096, secret: {name: hook, env: HOOK_SECRET}}
  type: com.example.order.placed
"""
PROJECT = {
    "main.py": "from pathlib import Path\n\n"
    "def seen(event):\n"
    "    with open(Path(__file__).parent / 'seen.txt', 'a') as f:\n"
    "        f.write(event['id'] + '\\n')\n",
    "functions.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: seen}\n"
    "spec: {handler: 'main:seen', signature: cloudevent}\n",
    "sources.yaml": SOURCES,
}


def body_of(provider: str) -> bytes:
    name = "push.json" if provider == "github" else "push-event.json"
    return (WEBHOOKS / provider / name).read_bytes()


def sha256(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(body: bytes, delivery: str, secret: str = SECRETS["GH_SECRET"]) -> dict:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + sha256(secret, body),
    }


def problem_of(answer) -> dict:
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


def pushes(platform) -> list[dict]:
    return [
        m["event"]
        for m in platform.events("default")
        if m["event"]["type"] == "dev.cumulo.git.push"
    ]


@pytest.fixture
def platform(platform_factory, tmp_path):
    return platform_factory(write_project(tmp_path / "p", PROJECT), env=SECRETS)


def test_each_providers_signed_push_is_one_event_with_the_mapped_attributes(platform):
    github, gitlab, gitea = body_of("github"), body_of("gitlab"), body_of("gitea")
    answers = [
        platform.request("POST", "/sources/gh", github, github_headers(github, "gh-1")),
        platform.request("POST", "/sources/lab", gitlab, {
            "Content-Type": "application/json", "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": "sampleToken!", "X-Gitlab-Event-UUID": "lab-1",
        }),
        platform.request("POST", "/sources/tea", gitea, {
            "Content-Type": "application/json", "X-Gitea-Event": "push",
            "X-Gitea-Delivery": "tea-1",
        }),
    ]  # fmt: skip
    assert [a.status for a in answers] == [202, 202, 202], [a.body for a in answers]

    events = {e["id"]: e for e in pushes(platform)}
    assert set(events) == {"gh-1", "lab-1", "tea-1"}
    gh = events["gh-1"]
    assert (gh["source"], gh["subject"]) == ("https://github.com/binkkatal/sample_app", "master")
    assert gh["data"] == {
        "repository": "https://github.com/binkkatal/sample_app",
        "branch": "master",
        "commit": "fd489864e7642b48eaad6e3f155c10e46810ec72",
        "before": "737d38c599c1b2991664dfc6155d6bf516fcce36",
        "pusher": "binkkatal",
        "changedPaths": [".razorops.yaml", "app/controllers/application_controller.rb"],
        "provider": "github",
    }
    assert events["lab-1"]["source"] == "http://example.com/mike/diaspora"
    assert events["tea-1"]["data"]["commit"] == "67b56589a45103f891bdee7c0546e5d40bc02001"
    seen = Path(platform.project) / "seen.txt"  # tea's sink is the function
    wait_for(lambda: seen.exists() and seen.read_text() == "tea-1\n", what="seen to run")


def test_refused_deliveries_are_problems_and_publish_nothing(platform):
    body = body_of("github")
    wrong = platform.request("POST", "/sources/gh", body, github_headers(body, "x", "guess"))
    missing = platform.request("POST", "/sources/gh", body, {"Content-Type": "application/json"})
    assert wrong.status == 403
    assert "X-Hub-Signature-256" in problem_of(wrong)["detail"]
    assert SECRETS["GH_SECRET"] not in wrong.body.decode()
    assert missing.status == 401
    assert "X-Hub-Signature-256" in problem_of(missing)["detail"]

    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    oversized = platform.request("POST", "/sources/hook", big, {
        "Content-Type": "application/json",
        "X-Cumulo-Signature": "sha256=" + sha256(SECRETS["HOOK_SECRET"], big),
    })  # fmt: skip
    assert oversized.status == 413 and "4096" in problem_of(oversized)["detail"]
    malformed = platform.request("POST", "/sources/hook", b"{nope", {
        "Content-Type": "application/json",
        "X-Cumulo-Signature": "sha256=" + sha256(SECRETS["HOOK_SECRET"], b"{nope"),
    })  # fmt: skip
    assert malformed.status == 400 and "JSON" in problem_of(malformed)["detail"]
    unknown = platform.request("POST", "/sources/nope", b"{}")
    assert unknown.status == 404

    assert platform.events("default") == []
    sources = {s["name"]: s for s in platform.status()["sources"]}
    assert sources["gh"]["rejected"] == {"bad-signature": 1, "missing-signature": 1}
    assert sources["hook"]["rejected"] == {"too-large": 1, "invalid-body": 1}


def test_a_redelivery_is_published_once_even_after_a_restart(platform):
    body = body_of("github")
    first = platform.request("POST", "/sources/gh", body, github_headers(body, "same"))
    again = platform.request("POST", "/sources/gh", body, github_headers(body, "same"))
    assert (first.status, again.status) == (202, 202)
    assert again.json()["duplicate"] is True

    platform.stop()
    platform.start()
    after_restart = platform.request("POST", "/sources/gh", body, github_headers(body, "same"))
    assert after_restart.json()["duplicate"] is True
    assert [e["id"] for e in pushes(platform)] == ["same"]


def test_branch_and_path_filters_answer_202_with_a_note(platform):
    payload = json.loads(body_of("github"))
    payload["ref"] = "refs/heads/feature"
    other_branch = json.dumps(payload).encode()
    answer = platform.request(
        "POST", "/sources/gh", other_branch, github_headers(other_branch, "f")
    )
    assert answer.status == 202
    assert "'feature' matches none of ['master']" in answer.json()["note"]

    gitlab = json.loads(body_of("gitlab"))
    for commit in gitlab["commits"]:
        commit["modified"] = [p for p in commit["modified"] if not p.startswith("app/")]
    docs_only = json.dumps(gitlab).encode()
    answer = platform.request("POST", "/sources/lab", docs_only, {
        "X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "sampleToken!",
    })  # fmt: skip
    assert answer.status == 202 and "no changed path" in answer.json()["note"]
    assert pushes(platform) == []


def test_generic_webhook_makes_an_event_of_a_signed_body(platform):
    body = b'{"order": 42}'
    answer = platform.request("POST", "/sources/hook", body, {
        "Content-Type": "application/json", "Idempotency-Key": "order-42",
        "X-Cumulo-Signature": "sha256=" + sha256(SECRETS["HOOK_SECRET"], body),
    })  # fmt: skip
    assert answer.status == 202, answer.body
    [stored] = [m["event"] for m in platform.events("default")]
    assert (stored["type"], stored["id"]) == ("com.example.order.placed", "order-42")
    assert (stored["source"], stored["data"]) == ("/cumulo/sources/hook", {"order": 42})


def test_a_secret_that_is_not_set_stops_cumulo_up_naming_the_variable(platform_factory, tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    with pytest.raises(AssertionError) as failed:
        platform_factory(project, env={"HOOK_SECRET": "x", "LAB_TOKEN": "y"})
    assert "GH_SECRET" in str(failed.value)


POLL = """\
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {{name: poller}}
spec:
  git: {{provider: poll, repository: '{repository}', interval: 200ms}}
"""


def test_cumulo_up_polls_and_a_restart_announces_only_what_is_new(platform_factory, tmp_path):
    remote = Remote(tmp_path / "git")
    a = remote.push("A")
    project = write_project(tmp_path / "p", {
        "main.py": PROJECT["main.py"], "functions.yaml": PROJECT["functions.yaml"],
        "poll.yaml": POLL.format(repository=remote.bare),
    })  # fmt: skip
    platform = platform_factory(project)
    wait_for(lambda: pushes(platform), what="commit A")
    platform.stop()
    b = remote.push("B")  # while down
    platform.start()
    wait_for(lambda: len(pushes(platform)) >= 2, what="commit B")
    time.sleep(0.6)  # a few more polls announce nothing
    assert [e["data"]["commit"] for e in pushes(platform)] == [a, b]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_cumulo_source_run_serves_one_source_and_publishes_to_the_bus(platform_factory, tmp_path):
    project = write_project(tmp_path / "p", PROJECT)
    state, port = tmp_path / "state", free_port()
    command = [sys.executable, "-m", "cumulo", "source", "run", "gh", "--dir", str(project),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {**os.environ, **SECRETS, "CUMULO_STATE_DIR": str(state)}
    with open(tmp_path / "source.out", "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _healthy(url), what="cumulo source run to listen")
        body = body_of("github")
        assert post(f"{url}/sources/gh", body, github_headers(body, "alone-1")) == 202
        assert post(f"{url}/sources/gh", body, github_headers(body, "x", "guess")) == 403
    finally:
        process.terminate()
        process.wait(10)
    platform = platform_factory(project, env=SECRETS)  # the same bus, read back
    assert [e["id"] for e in pushes(platform)] == ["alone-1"]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False
