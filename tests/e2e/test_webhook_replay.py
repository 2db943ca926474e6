"""Replayed and wrong-typed signed deliveries against a real `cumulo up`.

A replay is the same signed bytes sent again: with no ``Idempotency-Key``, or
with a new (unsigned) delivery id. It is answered 202 ``duplicate`` and never
published twice. A Standard Webhooks delivery signs its timestamp, so an old one
is refused outright. A signed body whose fields have the wrong types is a 400
problem naming the field, never a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import write_project

WEBHOOKS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "webhooks"
STANDARD_KEY = b"standard-webhooks key"
SECRETS = {
    "GH_SECRET": "gh-s3cret",
    "LAB_TOKEN": "lab-t0ken",
    "HOOK_SECRET": "hook-key",
    "S3_TOKEN": "s3-t0ken",
    "SWH_SECRET": "whsec_" + base64.b64encode(STANDARD_KEY).decode(),
}
SOURCES = """\
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: gh}
spec:
  git: {provider: github, secret: {name: gh, env: GH_SECRET}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: lab}
spec:
  git: {provider: gitlab, secret: {name: lab, env: LAB_TOKEN}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: hook}
spec:
  webhook: {auth: hmac, secret: {name: hook, env: HOOK_SECRET}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: uploads}
spec:
  s3: {bucket: datasets, token: {name: s3, env: S3_TOKEN}}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: swh}
spec:
  webhook: {auth: standard-webhooks, tolerance: 5m, secret: {name: swh, env: SWH_SECRET}}
"""


def sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(body: bytes, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + sha256_hex(SECRETS["GH_SECRET"], body),
    }


def hook(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Cumulo-Signature": "sha256=" + sha256_hex(SECRETS["HOOK_SECRET"], body),
    }


def standard(body: bytes, message: str, timestamp: int) -> dict[str, str]:
    signed = f"{message}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(STANDARD_KEY, signed, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "webhook-id": message,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{digest}",
    }


def stored(platform, source: str) -> list[dict]:
    events = [m["event"] for m in platform.events("default")]
    return [e for e in events if e.get("cumulosource") == source]


@pytest.fixture
def platform(platform_factory, tmp_path):
    files = {"sources.yaml": SOURCES}
    return platform_factory(write_project(tmp_path / "p", files), env=SECRETS)


def test_the_same_signed_body_three_times_is_published_once(platform):
    body = b'{"order": 42}'
    answers = [platform.request("POST", "/sources/hook", body, hook(body)) for _ in range(3)]
    assert [a.status for a in answers] == [202, 202, 202], [a.body for a in answers]
    assert answers[0].json()["accepted"] == 1
    for again in answers[1:]:
        assert again.json()["accepted"] == 0 and again.json()["duplicate"] is True
        assert "replayed delivery" in again.json()["note"]
    other = b'{"order": 43}'  # a different signed body is a new delivery
    assert platform.request("POST", "/sources/hook", other, hook(other)).status == 202
    assert [e["data"] for e in stored(platform, "hook")] == [{"order": 42}, {"order": 43}]


def test_a_new_unsigned_delivery_id_does_not_republish_a_signed_push(platform):
    body = (WEBHOOKS / "github" / "push.json").read_bytes()
    first = platform.request("POST", "/sources/gh", body, github(body, "d-1"))
    redelivered = platform.request("POST", "/sources/gh", body, github(body, "d-1"))
    replayed = platform.request("POST", "/sources/gh", body, github(body, "forged-2"))
    assert (first.status, redelivered.status, replayed.status) == (202, 202, 202)
    assert redelivered.json()["duplicate"] is True  # GitHub's Redeliver: acknowledged
    assert replayed.json()["duplicate"] is True
    assert "replayed delivery" in replayed.json()["note"]
    stats = {s["name"]: s for s in platform.status()["sources"]}["gh"]
    assert (stats["published"], stats["duplicates"], stats["replays"]) == (1, 2, 1)

    platform.stop()
    platform.start()  # the digests are durable
    after = platform.request("POST", "/sources/gh", body, github(body, "forged-3"))
    assert after.json()["duplicate"] is True and "replayed delivery" in after.json()["note"]
    assert [e["id"] for e in stored(platform, "gh")] == ["d-1"]


def test_a_standard_webhooks_delivery_outside_the_tolerance_is_refused(platform):
    body = b'{"invoice": "in_1"}'
    now = int(time.time())
    stale = platform.request("POST", "/sources/swh", body, standard(body, "msg_1", now - 600))
    early = platform.request("POST", "/sources/swh", body, standard(body, "msg_1", now + 600))
    for refused in (stale, early):
        assert refused.status == 401, refused.body
        assert refused.headers["content-type"] == "application/problem+json"
        assert "tolerance" in refused.json()["detail"]
    forged = standard(body, "msg_1", now)
    forged["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    assert platform.request("POST", "/sources/swh", body, forged).status == 403
    assert stored(platform, "swh") == []

    fresh = platform.request("POST", "/sources/swh", body, standard(body, "msg_1", now))
    retried = platform.request("POST", "/sources/swh", body, standard(body, "msg_1", now + 1))
    assert (fresh.status, retried.status) == (202, 202)
    assert retried.json()["duplicate"] is True
    [event] = stored(platform, "swh")
    assert (event["id"], event["data"]) == ("msg_1", {"invoice": "in_1"})


def mutated(provider: str, change) -> bytes:
    """The provider's real push body, with ``change`` applied."""
    name = "push.json" if provider == "github" else "push-event.json"
    payload = json.loads((WEBHOOKS / provider / name).read_bytes())
    change(payload)
    return json.dumps(payload).encode()


def s3_body(bucket: object) -> bytes:
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": bucket, "object": {"key": "a"}}}
    return json.dumps({"Records": [record]}).encode()


def test_signed_bodies_with_wrong_types_are_400_never_500(platform):
    gh = mutated("github", lambda p: p.update(commits=["x"]))
    gh_pusher = mutated("github", lambda p: p.update(pusher=7))
    lab = mutated("gitlab", lambda p: p.update(commits=[1]))
    lab_headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRETS["LAB_TOKEN"]}
    s3_headers = {"Authorization": f"Bearer {SECRETS['S3_TOKEN']}"}
    deep = b"[" * 300 + b"]" * 300
    cases = [
        ("gh", gh, github(gh, "w-1"), "commits[0]: must be an object"),
        ("gh", gh_pusher, github(gh_pusher, "w-2"), "pusher: must be an object"),
        ("lab", lab, lab_headers, "commits[0]: must be an object"),
        ("uploads", s3_body("x"), s3_headers, "Records[0].s3.bucket: must be an object"),
        ("uploads", s3_body({"name": 5}), s3_headers, "Records[0].s3.bucket.name: must be"),
        ("hook", deep, hook(deep), "nest"),
    ]
    for source, body, headers, problem in cases:
        answer = platform.request("POST", f"/sources/{source}", body, headers)
        assert answer.status == 400, (source, answer.status, answer.body)
        assert answer.headers["content-type"] == "application/problem+json"
        assert problem in answer.json()["detail"], answer.json()
    assert platform.events("default") == []
    assert platform.request("GET", "/healthz").status == 200
