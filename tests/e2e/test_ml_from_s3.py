"""Issue 4's "done when": upload a CSV to a MinIO bucket → training starts.

A real `cumulo up` of examples/ml-pipeline plus an S3 EventSource in notification
mode, and a real MinIO whose webhook target is the platform's `/sources/uploads`.
Uploading `small.csv` with boto3 trains on the `s3://` URI the event carries (the
job workers download it from MinIO with boto3), evaluates, deploys, and predict
answers with version 1. The same YAML and commands are in docs/events.md ("Wire
it into examples/ml-pipeline").
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

from cumulo.functions.model_registry import ModelRegistry
from tests.e2e.platform import RunningPlatform, wait_for
from tests.e2e.test_ml_pipeline import chain_event, copy_example, holdout_rows, predict
from tests.e2e.test_s3_source import TOKEN, notify, webhook_targets
from tests.servers.minio import free_port, start_minio

BUCKET = "datasets"
UPLOADS = """\
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: uploads}
spec:
  s3: {bucket: datasets, suffix: .csv, mode: notification, token: {name: minio-hook, key: token}}
  type: dev.cumulo.dataset.ready   # train's own trigger picks the upload up as it is
"""
# No `sink: {function: train}` beside that type: the sink's implied trigger would deliver
# each upload to train a second time (two triggers, two deliveries), training twice.


def with_uploads_source(project: Path) -> Path:
    manifest = project / "cumulo.yaml"
    manifest.write_text(manifest.read_text() + UPLOADS)
    return project


def train_reads_s3(project: Path, endpoint: str, region: str) -> Path:
    """train declares what it needs to read s3:// (a function gets nothing undeclared)."""
    manifest = project / "cumulo.yaml"
    documents = list(yaml.safe_load_all(manifest.read_text()))
    [train] = [d for d in documents if d["kind"] == "Function" and d["metadata"]["name"] == "train"]
    train["spec"]["env"] = {"CUMULO_S3_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": region}
    train["spec"]["params"]["dataRoots"] = [f"s3://{BUCKET}/incoming/"]  # what train may read
    train["spec"]["secrets"] = [
        {"name": "minio", "key": "access-key", "env": "AWS_ACCESS_KEY_ID"},
        {"name": "minio", "key": "secret-key", "env": "AWS_SECRET_ACCESS_KEY"},
    ]
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return project


def uploaded(platform: RunningPlatform) -> list[dict[str, Any]]:
    """The dataset.ready events the `uploads` source published."""
    return [
        m["event"]
        for m in platform.events("default")
        if m["event"]["type"] == "dev.cumulo.dataset.ready"
        and m["event"].get("cumulosource") == "uploads"
    ]


def of_type(platform: RunningPlatform, type: str) -> list[dict[str, Any]]:
    return [m["event"] for m in platform.events("default") if m["event"]["type"] == type]


def test_uploading_a_csv_to_minio_trains_evaluates_and_deploys(platform_factory, tmp_path):
    project = with_uploads_source(copy_example(tmp_path))
    csv = (project / "data" / "small.csv").read_bytes()
    etag = hashlib.md5(csv).hexdigest()
    uri = f"s3://{BUCKET}/incoming/small.csv"
    # The gateway's port is chosen first: MinIO needs it for its webhook target, and the
    # platform's workers need MinIO's endpoint. MinIO starts with the target offline.
    port = free_port()
    with start_minio(tmp_path / "minio", webhook_targets(f"http://127.0.0.1:{port}")) as minio:
        train_reads_s3(project, minio.endpoint, minio.region)  # where and how train reads s3://
        env = {
            "MINIO_HOOK_TOKEN": TOKEN,  # token: {name: minio-hook, key: token}
            **minio.aws_env(),  # the values of train's declared secrets
        }
        platform = platform_factory(project, env=env, port=port)
        client = minio.client()
        notify(client, BUCKET, "GOOD")
        client.put_object(Bucket=BUCKET, Key="incoming/notes.txt", Body=b"not a dataset")
        client.put_object(Bucket=BUCKET, Key="incoming/small.csv", Body=csv)

        [ready] = wait_for(lambda: uploaded(platform), timeout=30, what="MinIO's notification")
        assert ready["data"]["uri"] == uri
        assert ready["data"]["etag"] == etag
        assert ready["id"].startswith(f"{BUCKET}/incoming/small.csv@")
        trained = chain_event(platform, "dev.cumulo.model.trained", ready["id"])
        evaluated = chain_event(platform, "dev.cumulo.model.evaluated", ready["id"])
        deployed = chain_event(platform, "dev.cumulo.model.deployed", ready["id"])

    lineage = trained["data"]["lineage"]
    assert lineage["datasetUri"] == uri
    assert lineage["datasetVersion"] == etag
    assert lineage["datasetHash"].startswith("sha256:")
    assert evaluated["data"]["promote"] is True
    assert deployed["data"]["version"] == 1
    registered = ModelRegistry(platform.state / "models.db").get("churn", 1)
    assert registered.stage == "champion"
    assert {k: registered.lineage[k] for k in ("datasetUri", "datasetVersion", "datasetHash")} == {
        "datasetUri": uri,
        "datasetVersion": etag,
        "datasetHash": lineage["datasetHash"],
    }
    assert registered.lineage["triggerEvent"] == ready["id"]
    # The .txt is filtered out by the suffix; the .csv trains once.
    assert len(uploaded(platform)) == 1
    assert len(of_type(platform, "dev.cumulo.model.trained")) == 1

    answer = predict(platform, holdout_rows(project))
    assert (answer["model"], answer["version"], len(answer["predictions"])) == ("churn", 1, 5)
