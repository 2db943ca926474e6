"""GET /metrics on a real `cumulo up`: the numbers say what happened."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform, cloudevent, wait_for

FUNCTIONS = """
import time

def slow(event):
    time.sleep(0.4)

def broken(event):
    raise RuntimeError("always")

def train(event):
    return None
"""

SPEC = """apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: slow}
spec:
  handler: main:slow
  signature: cloudevent
  scale: {max: 1, concurrency: 1}
  triggers: [{filters: [{exact: {type: test.slow}}]}]
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: broken}
spec:
  handler: main:broken
  signature: cloudevent
  triggers:
  - filters: [{exact: {type: test.broken}}]
    delivery: {retries: 2, backoffPolicy: linear, backoffDelay: 0.1s}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: train}
spec:
  handler: main:train
  signature: cloudevent
  mode: job
  triggers: [{filters: [{exact: {type: test.train}}]}]
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(platform: RunningPlatform) -> Samples:
    answer = platform.request("GET", "/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def trigger_of(platform: RunningPlatform, function: str) -> str:
    return next(t["name"] for t in platform.status()["triggers"] if t["function"] == function)


def settled(platform: RunningPlatform) -> bool:
    triggers = {t["function"]: t for t in platform.status()["triggers"]}
    return (
        triggers["slow"]["delivered"] == 3
        and triggers["broken"]["dead_lettered"] == 1
        and triggers["train"]["delivered"] == 1
    )


def test_metrics_count_what_happened(platform_factory, tmp_path: Path):
    folder = write_project(tmp_path / "p", {"main.py": FUNCTIONS, "cumulo.yaml": SPEC})
    platform = platform_factory(folder)
    slow, broken = trigger_of(platform, "slow"), trigger_of(platform, "broken")
    events = [cloudevent("test.slow", {"n": i}, id=f"slow-{i}") for i in range(3)]
    events += [cloudevent("test.broken", {}, id="b-1"), cloudevent("test.train", {}, id="t-1")]
    assert platform.publish(events).status == 202

    waiting = scrape(platform)
    assert value(waiting, "cumulo_queue_depth", trigger=slow) > 0  # one worker, 0.4s each

    wait_for(lambda: settled(platform), timeout=30, what="every delivery to settle")
    wait_for(
        lambda: value(scrape(platform), "cumulo_queue_depth", trigger=slow) == 0,
        what="the queue to drain",
    )
    samples = scrape(platform)

    def counted(name: str, **labels: str) -> float:
        return value(samples, name, **labels)

    assert counted("cumulo_events_published_total", bus="default", topic="default") == 5
    assert counted("cumulo_events_published_total", bus="default", topic="dead-letter") == 1
    assert counted("cumulo_events_delivered_total", trigger=slow, function="slow") == 3
    assert counted("cumulo_events_delivered_total", trigger=broken, function="broken") == 0
    assert counted("cumulo_events_retried_total", trigger=broken, function="broken") == 2
    assert counted("cumulo_events_dead_lettered_total", trigger=broken, function="broken") == 1
    assert counted("cumulo_queue_depth", trigger=broken) == 0

    assert counted("cumulo_cold_starts_total", function="slow") == 1
    assert counted("cumulo_replicas", function="slow") == 1
    assert counted("cumulo_job_runs_total", function="train", status="succeeded") == 1

    assert counted("cumulo_invocation_duration_seconds_count", function="slow") == 3
    assert counted("cumulo_invocation_duration_seconds_sum", function="slow") >= 1.2
    assert counted("cumulo_invocation_duration_seconds_count", function="broken") == 3
    latency = "cumulo_delivery_latency_seconds_count"
    assert counted(latency, trigger=slow, function="slow") == 3
    assert counted(latency, trigger=broken, function="broken") == 1  # final settlements only
    assert counted("cumulo_delivery_latency_seconds_sum", trigger=slow, function="slow") >= 1.2
