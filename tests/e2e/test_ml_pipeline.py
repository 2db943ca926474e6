"""The ML journey of the README, on a real `cumulo up` of examples/ml-pipeline.

A dataset arrives → train → evaluate → deploy → predict answers with the new
version. A better dataset replaces the champion, a worse one is rejected and
pages, a broken one fails its run and pages with the log tail, rollback
returns to the previous champion, and a cron tick retrains on schedule.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cumulo.cli import app
from tests.e2e.platform import RunningPlatform, cloudevent, wait_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ml-pipeline"
TRAINING_TIMEOUT = 120


class Receiver:
    """A real webhook receiver on loopback: Slack-compatible JSON bodies, recorded."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [json.dumps(body) for body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def copy_example(tmp_path: Path, **changes: Any) -> Path:
    """The example in tmp_path, with the alert webhook set and the given spec changes."""
    project = tmp_path / "ml-pipeline"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".cumulo"))
    documents = list(yaml.safe_load_all((project / "cumulo.yaml").read_text()))
    for document in documents:
        name = document["metadata"]["name"]
        for key, value in changes.get(name, {}).items():
            document["spec"][key] = value
    (project / "cumulo.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return project


def chain_event(platform: RunningPlatform, type: str, started_by: str) -> dict[str, Any]:
    """The event of ``type`` in the chain started by event ``started_by`` (waits for it)."""

    def find() -> dict[str, Any] | None:
        for message in platform.events("default"):
            event = message["event"]
            lineage = (event.get("data") or {}).get("lineage", {})
            if event["type"] == type and lineage.get("triggerEvent") == started_by:
                return event
        return None

    return wait_for(find, timeout=TRAINING_TIMEOUT, what=f"{type} after {started_by}")


def dataset_ready(platform: RunningPlatform, uri: str, id: str) -> None:
    answer = platform.publish([cloudevent("dev.cumulo.dataset.ready", {"uri": uri}, id=id)])
    assert answer.status == 202, answer.body


def predict(platform: RunningPlatform, rows: list[list[float]]) -> dict[str, Any]:
    body = json.dumps({"instances": rows}).encode()
    answer = platform.request(
        "POST", "/fn/predict", body, {"Content-Type": "application/json"}, timeout=60
    )
    assert answer.status == 200, answer.body
    return dict(answer.json())


def holdout_rows(project: Path, n: int = 5) -> list[list[float]]:
    lines = (project / "data" / "holdout.csv").read_text().splitlines()[1 : n + 1]
    return [[float(value) for value in line.split(",")[:-1]] for line in lines]


def cli(project: Path, state: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app, [*args, "--dir", str(project)], env={"CUMULO_STATE_DIR": str(state)}
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_ml_journey(platform_factory, tmp_path, receiver):
    alert = {"params": {"channels": [{"kind": "log"}, {"kind": "webhook", "url": receiver.url}]}}
    project = copy_example(tmp_path, alert=alert)
    platform = platform_factory(project)
    rows = holdout_rows(project)

    dataset_ready(platform, "data/small.csv", id="small")
    deployed = chain_event(platform, "dev.cumulo.model.deployed", "small")
    assert deployed["data"]["version"] == 1
    first = predict(platform, rows)
    assert (first["model"], first["version"], len(first["predictions"])) == ("churn", 1, 5)

    dataset_ready(platform, "data/large.csv", id="large")
    evaluated = chain_event(platform, "dev.cumulo.model.evaluated", "large")
    assert evaluated["data"]["promote"] is True
    assert (
        evaluated["data"]["candidate"]["metrics"]["accuracy"]
        > evaluated["data"]["champion"]["metrics"]["accuracy"]
    )
    chain_event(platform, "dev.cumulo.model.deployed", "large")
    assert predict(platform, rows)["version"] == 2

    dataset_ready(platform, "data/noisy.csv", id="noisy")
    rejected = chain_event(platform, "dev.cumulo.model.rejected", "noisy")
    assert rejected["data"]["version"] == 3
    wait_for(
        lambda: any("rejected" in text for text in receiver.texts()), what="the rejection alert"
    )
    assert predict(platform, rows)["version"] == 2

    dataset_ready(platform, "data/broken.csv", id="broken")
    failed = chain_event(platform, "dev.cumulo.run.failed", "broken")
    assert "target" in failed["data"]["message"]
    wait_for(
        lambda: any("broken.csv" in text for text in receiver.texts()), what="the failure alert"
    )
    [page] = [text for text in receiver.texts() if "broken.csv" in text]
    assert "target" in page  # the log tail travels with the page

    shown = cli(project, platform.state, "models", "show", "churn", "2")
    assert "large.csv" in shown and evaluated["data"]["lineage"]["datasetHash"][:12] in shown

    cli(project, platform.state, "models", "rollback", "churn")
    assert predict(platform, rows)["version"] == 1


def test_a_cron_tick_retrains_on_schedule(platform_factory, tmp_path):
    source = {
        "cron": {"schedule": "* * * * * */3", "missed": "skip", "data": {"uri": "data/small.csv"}}
    }
    platform = platform_factory(copy_example(tmp_path, **{"nightly-retrain": source}))

    def trained_by_cron() -> dict[str, Any] | None:
        for message in platform.events("default"):
            event = message["event"]
            if event["type"] == "dev.cumulo.model.trained":
                return event
        return None

    trained = wait_for(trained_by_cron, timeout=TRAINING_TIMEOUT, what="a scheduled training")
    assert trained["data"]["lineage"]["datasetUri"] == "data/small.csv"
    ticks = [
        m["event"]
        for m in platform.events("default")
        if m["event"]["type"] == "dev.cumulo.cron.tick"
    ]
    assert trained["data"]["lineage"]["triggerEvent"] in {tick["id"] for tick in ticks}
