"""A Kafka source under `cumulo up`: records reach a function through the bus."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import write_project
from tests.e2e.platform import wait_for
from tests.events.sources.test_kafka_source import produce
from tests.servers.kafka import KafkaServer

FUNCTIONS = """
import functions_framework

@functions_framework.cloud_event
def record(event):
    print(f"order {event['subject']}: {event.data['total']}", flush=True)
"""

SPEC = """
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec: {handler: "main:record"}
---
apiVersion: cumulo.dev/v1alpha1
kind: EventSource
metadata: {name: orders}
spec:
  kafka: {brokers: ["BOOTSTRAP"], topics: ["TOPIC"], start: earliest}
  type: com.example.order.placed
  sink: {function: record}
"""


def test_records_reach_the_sink_function(platform_factory, tmp_path, kafka_server: KafkaServer):
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    spec = SPEC.replace("BOOTSTRAP", kafka_server.bootstrap).replace("TOPIC", topic)
    platform = platform_factory(
        write_project(tmp_path / "project", {"main.py": FUNCTIONS, "cumulo.yaml": spec})
    )
    produce(kafka_server, topic, [(f"o{i}".encode(), b'{"total": %d}' % i, []) for i in range(3)])

    wait_for(lambda: platform.log("record").count("order ") == 3, timeout=60, what="3 orders")
    assert "order o2: 2" in platform.log("record")
    [event] = [m["event"] for m in platform.events("default") if m["event"].get("subject") == "o1"]
    assert event["type"] == "com.example.order.placed"
    assert event["source"] == f"kafka://{kafka_server.bootstrap}/{topic}"
    assert event["partitionkey"] == "o1"
