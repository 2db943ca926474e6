"""One trace from ingest to the end of a chain, and its spans at a real OTLP/HTTP receiver."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from cumulo.events.tracing import parse
from cumulo.runtimes.local.runs import RunStore
from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform, cloudevent, wait_for

FUNCTIONS = """
from cumulo.functions.context import FunctionContext, as_event
from cumulo.events.lineage import RUN_PROGRESS, Lineage, lineage_event

def prepare(event):
    lineage = Lineage.of(as_event(event))
    FunctionContext.current().publish(lineage_event(RUN_PROGRESS, "prepare", {"step": 1}, lineage))
    return lineage_event("test.prepared", "prepare", {"rows": 3}, lineage)

def train(event):
    return {"type": "test.trained", "data": {"ok": True}}
"""

SPEC = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: prepare}
spec:
  handler: main:prepare
  signature: cloudevent
  triggers: [{filters: [{exact: {type: test.dataset.ready}}]}]
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: train}
spec:
  handler: main:train
  signature: cloudevent
  mode: job
  triggers: [{filters: [{exact: {type: test.prepared}}]}]
"""


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: POST /v1/traces, protobuf."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.spans: list = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces" or "protobuf" not in self.headers["Content-Type"]:
            self.send_error(404)
            return
        request = ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def chain(platform: RunningPlatform) -> dict[str, dict]:
    events = {m["event"]["type"]: m["event"] for m in platform.events("default")}
    wanted = {"test.dataset.ready", "dev.cumulo.run.progress", "test.prepared", "test.trained"}
    return events if wanted <= events.keys() else {}


def test_a_chain_shares_one_trace_and_exports_linked_spans(
    platform_factory, tmp_path: Path, receiver: Receiver
):
    folder = write_project(tmp_path / "p", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    platform = platform_factory(folder, env={"CUMULO_OTLP_ENDPOINT": receiver.url})
    ready = cloudevent("test.dataset.ready", {"uri": "data.csv"}, id="ds-1")
    assert platform.publish([ready]).status == 202

    events = wait_for(lambda: chain(platform), timeout=30, what="the chain to finish")
    contexts = {kind: parse(event.get("traceparent")) for kind, event in events.items()}
    assert None not in contexts.values(), events
    root = contexts["test.dataset.ready"]
    assert {c.trace_id for c in contexts.values()} == {root.trace_id}
    assert len({c.span_id for c in contexts.values()}) == 4  # a new span per event
    [run] = RunStore(platform.state / "runs.db").list("train")
    assert run.trace == root.trace_id

    prepared, trained = contexts["test.prepared"], contexts["test.trained"]
    expected = {
        ("ingest test.dataset.ready", root.span_id, ""),
        ("emit test.prepared", prepared.span_id, root.span_id),
        ("emit test.trained", trained.span_id, prepared.span_id),
    }

    def spans() -> dict[tuple[str, str, str], object] | None:
        with receiver.lock:
            found = {(s.name, s.span_id.hex(), s.parent_span_id.hex()): s for s in receiver.spans}
        delivers = {k[0]: k for k in found if k[0].startswith("deliver ")}
        return found if expected <= found.keys() and len(delivers) == 2 else None

    found = wait_for(spans, timeout=20, what="the spans at the receiver")
    assert {s.trace_id.hex() for s in found.values()} == {root.trace_id}
    delivers = {key[0]: (key, span) for key, span in found.items() if key[0].startswith("deliver")}
    (_, _, prepare_parent), prepare_span = delivers["deliver prepare"]
    (_, _, train_parent), train_span = delivers["deliver train"]
    assert prepare_parent == root.span_id
    assert train_parent == prepared.span_id
    attributes = {a.key: a.value for a in train_span.attributes}
    assert attributes["cumulo.function"].string_value == "train"
    assert attributes["cumulo.status"].string_value == "delivered"
    assert attributes["cumulo.attempt"].int_value == 1
    assert prepare_span.status.code == 1  # STATUS_CODE_OK


def test_an_event_with_a_traceparent_keeps_it(platform_factory, tmp_path: Path):
    folder = write_project(tmp_path / "p", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    platform = platform_factory(folder)
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    ready = cloudevent("test.dataset.ready", {"uri": "data.csv"}, id="ds-2") | {
        "traceparent": given,
        "tracestate": "vendor=1",
    }
    assert platform.publish([ready]).status == 202
    events = wait_for(lambda: chain(platform), timeout=30, what="the chain to finish")
    assert events["test.dataset.ready"]["traceparent"] == given
    prepared = parse(events["test.prepared"]["traceparent"])
    assert prepared is not None and prepared.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert events["test.prepared"]["tracestate"] == "vendor=1"
