"""S3 sources on a real `cumulo up`: MinIO's real webhook notifications, and polling MinIO."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.conftest import write_project
from tests.e2e.platform import wait_for
from tests.servers.minio import free_port, start_minio

TOKEN = "minio-hook-t0ken"
TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "s3"
SEEN = {
    "main.py": "from pathlib import Path\n\n"
    "def seen(event):\n"
    "    with open(Path(__file__).parent / 'seen.txt', 'a') as f:\n"
    "        f.write(event.data['uri'] + '\\n')\n",
    "functions.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: seen}\n"
    "spec: {handler: 'main:seen', signature: cloudevent}\n",
}
NOTIFIED = """\
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: uploads}
spec:
  s3: {bucket: uploads, prefix: data/, token: {name: minio-hook, env: S3_HOOK_TOKEN}}
  sink: {function: seen}
"""
POLLED = """\
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: polled}
spec:
  s3: {bucket: %s, endpoint: "%s", mode: poll, interval: 0.2s, suffix: .csv,
       since: "2000-01-01T00:00:00Z"}
"""


def object_events(platform) -> list[dict]:
    return [
        m["event"]
        for m in platform.events("default")
        if m["event"]["type"] == "dev.cumulo.object.created"
    ]


def source_stats(platform, name: str) -> dict:
    return next(s for s in platform.status()["sources"] if s["name"] == name)


def webhook_targets(url: str) -> dict[str, str]:
    """Two MinIO webhook targets to the platform's source: GOOD has the token, BAD does not."""
    env = {}
    for target, token in (("GOOD", TOKEN), ("BAD", "not-the-token")):
        env |= {
            f"MINIO_NOTIFY_WEBHOOK_ENABLE_{target}": "on",
            f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{target}": f"{url}/sources/uploads",
            f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{target}": token,
        }
    return env


def notify(client, bucket: str, target: str) -> None:
    client.create_bucket(Bucket=bucket)
    arn = f"arn:minio:sqs::{target}:webhook"
    config = {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    client.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)


def test_minio_notifications_become_events_with_the_object_uri(platform_factory, tmp_path):
    project = write_project(tmp_path / "p", {**SEEN, "sources.yaml": NOTIFIED})
    platform = platform_factory(project, env={"S3_HOOK_TOKEN": TOKEN})
    with start_minio(tmp_path / "minio", webhook_targets(platform.url)) as minio:
        client = minio.client()
        notify(client, "uploads", "GOOD")
        notify(client, "other", "BAD")
        for key in ("data/red flower.jpg", "data/a+b.csv", "elsewhere/skip.txt"):
            client.put_object(Bucket="uploads", Key=key, Body=b"hello")
        client.put_object(Bucket="other", Key="data/refused.txt", Body=b"no")
        two = lambda: len(events := object_events(platform)) >= 2 and events  # noqa: E731
        events = wait_for(two, timeout=30, what="MinIO's notifications")
        wait_for(
            lambda: source_stats(platform, "uploads")["rejected"], what="the bad token", timeout=30
        )
        wait_for(
            lambda: source_stats(platform, "uploads")["ignored"],
            what="the filtered key",
            timeout=30,
        )

    assert sorted(e["subject"] for e in object_events(platform)) == [
        "data/a+b.csv",
        "data/red flower.jpg",
    ]
    event = next(e for e in events if e["subject"] == "data/red flower.jpg")
    assert event["source"] == "s3://uploads"
    assert event["cumulosource"] == "uploads"
    assert event["id"].startswith("uploads/data/red flower.jpg@")
    data = event["data"]
    assert data["uri"] == "s3://uploads/data/red flower.jpg"
    assert (data["bucket"], data["key"], data["size"]) == ("uploads", "data/red flower.jpg", 5)
    assert data["eventName"] == "ObjectCreated:Put"
    assert data["etag"] == "5d41402abc4b2a76b9719d911017c592"  # md5("hello")
    stats = source_stats(platform, "uploads")
    assert stats["rejected"].get("bad-signature", 0) >= 1 and stats["published"] == 2
    seen = project / "seen.txt"
    uris = ["s3://uploads/data/a+b.csv", "s3://uploads/data/red flower.jpg"]
    wait_for(
        lambda: seen.exists() and len(seen.read_text().splitlines()) == 2,
        what="seen to run",
        timeout=30,
    )
    assert sorted(seen.read_text().splitlines()) == uris


def test_aws_payloads_and_refusals_through_the_gateway(platform_factory, tmp_path):
    project = write_project(
        tmp_path / "p", {**SEEN, "sources.yaml": NOTIFIED.replace("prefix: data/, ", "")}
    )
    platform = platform_factory(project, env={"S3_HOOK_TOKEN": TOKEN})
    body = (TESTDATA / "s3-event.json").read_bytes().replace(b"sourcebucket", b"uploads")
    sns = json.dumps({"Type": "Notification", "Message": body.decode()}).encode()
    test_event = b'{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "uploads"}'
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    wrong = platform.request("POST", "/sources/uploads", body, {"Authorization": "Bearer guess"})
    missing = platform.request("POST", "/sources/uploads", body)
    assert (wrong.status, missing.status) == (403, 401)
    assert wrong.headers["content-type"] == "application/problem+json"
    assert TOKEN not in wrong.body.decode()
    assert platform.request("POST", "/sources/uploads", b"{", bearer).status == 400
    assert platform.request("POST", "/sources/uploads", test_event, bearer).json()["accepted"] == 0
    assert object_events(platform) == []

    assert platform.request("POST", "/sources/uploads", sns, bearer).json()["accepted"] == 1
    again = platform.request("POST", "/sources/uploads", body, bearer).json()
    assert again["duplicate"] is True  # the same record, unwrapped
    [event] = object_events(platform)
    assert (event["subject"], event["data"]["uri"]) == (
        "Happy Face.jpg",
        "s3://uploads/Happy Face.jpg",
    )


def test_cumulo_up_polls_a_bucket_and_a_restart_announces_only_what_is_new(
    platform_factory, tmp_path, minio
):
    bucket = minio.new_bucket("polled")
    client = minio.client()
    client.put_object(Bucket=bucket, Key="old.csv", Body=b"1")  # backfilled by since
    client.put_object(Bucket=bucket, Key="old.txt", Body=b"1")  # not a .csv
    project = write_project(tmp_path / "p", {"sources.yaml": POLLED % (bucket, minio.endpoint)})
    platform = platform_factory(project, env=minio.aws_env())
    wait_for(lambda: object_events(platform), what="the backfill", timeout=30)
    client.put_object(Bucket=bucket, Key="new.csv", Body=b"2")
    wait_for(lambda: len(object_events(platform)) == 2, what="the new object", timeout=30)
    platform.stop()

    client.put_object(Bucket=bucket, Key="while-down.csv", Body=b"3")
    again = platform_factory(project, env=minio.aws_env())
    wait_for(
        lambda: len(object_events(again)) == 3, what="the object uploaded while down", timeout=30
    )
    polls = source_stats(again, "polled")["polls"]
    wait_for(
        lambda: source_stats(again, "polled")["polls"] > polls + 2, what="more polls", timeout=30
    )
    keys = [e["subject"] for e in object_events(again)]
    assert keys == ["old.csv", "new.csv", "while-down.csv"]
    assert object_events(again)[0]["source"] == f"{minio.endpoint}/{bucket}"


def test_cumulo_source_run_receives_notifications_on_its_own(platform_factory, tmp_path):
    project = write_project(tmp_path / "p", {**SEEN, "sources.yaml": NOTIFIED})
    state, port = tmp_path / "state", free_port()
    command = [sys.executable, "-m", "cumulo", "source", "run", "uploads", "--dir", str(project),
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    env = {**os.environ, "S3_HOOK_TOKEN": TOKEN, "CUMULO_STATE_DIR": str(state)}
    body = (TESTDATA / "s3-event.json").read_bytes().replace(b"sourcebucket", b"uploads")
    body = body.replace(b"Happy%20Face.jpg", b"data%2FHappy+Face.jpg")
    with open(tmp_path / "source.out", "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/sources/uploads"
        wait_for(
            lambda: post(url, b"{}", {}) == 401, what="cumulo source run to listen", timeout=30
        )
        assert post(url, body, {"Authorization": f"Bearer {TOKEN}"}) == 202
        assert post(url, body, {"Authorization": "Bearer guess"}) == 403
    finally:
        process.terminate()
        process.wait(10)
    platform = platform_factory(project, env={"S3_HOOK_TOKEN": TOKEN})  # the same bus, read back
    assert [e["subject"] for e in object_events(platform)] == ["data/Happy Face.jpg"]


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0
