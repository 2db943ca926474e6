"""End-to-end figures of a real `cumulo up`: dispatch, latency, cold start, gateway.

    python benchmarks/bench_platform.py
"""

from __future__ import annotations

import http.client
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_worker import ff_command, free_port, load, running  # noqa: E402
from tests.e2e.platform import RunningPlatform, wait_for  # noqa: E402

FIXTURE = ROOT / "benchmarks" / "fixtures" / "platform"
DISPATCH_EVENTS = 20_000
LATENCY_RATE = 1000  # events/s
LATENCY_SECONDS = 5
COLD_STARTS = 15


def row(benchmark: str, value: float, unit: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def batch(type_: str, ids: range, data: dict[str, object] | None = None) -> bytes:
    return json.dumps([
        {"specversion": "1.0", "id": f"{type_}-{i}", "source": "/bench", "type": type_, "data": data}
        for i in ids
    ]).encode()


def delivered(platform: RunningPlatform, trigger: str) -> int:
    return next(t["delivered"] for t in platform.status()["triggers"] if t["name"] == trigger)


def dispatch_throughput(platform: RunningPlatform) -> list[dict[str, object]]:
    """Publish 20,000 events (batches of 500) and time until the no-op saw them all."""
    start = time.perf_counter()
    for first in range(0, DISPATCH_EVENTS, 500):
        answer = platform.request("POST", "/events", batch("bench.noop", range(first, first + 500)),
                                  {"Content-Type": "application/cloudevents-batch+json"})
        assert answer.status == 202, answer.body
    published = time.perf_counter() - start
    wait_for(lambda: delivered(platform, "noop-0") >= DISPATCH_EVENTS, timeout=300,
             what="every event to be delivered")
    elapsed = time.perf_counter() - start
    return [
        row("publish over HTTP (batches of 500), durable", DISPATCH_EVENTS / published, "events/s"),
        row("end-to-end dispatch to a no-op function", DISPATCH_EVENTS / elapsed, "events/s"),
    ]


def publish_to_invoke_latency(platform: RunningPlatform, out: Path) -> list[dict[str, object]]:
    """Single-event POSTs at 1,000/s; the function records now - sent."""
    connection = http.client.HTTPConnection(platform.url.removeprefix("http://"))
    count = LATENCY_RATE * LATENCY_SECONDS
    start = time.perf_counter()
    for i in range(count):
        time.sleep(max(0.0, start + i / LATENCY_RATE - time.perf_counter()))
        body = batch("bench.latency", range(i, i + 1), {"sent": time.time()})
        connection.request("POST", "/events", body,
                           {"Content-Type": "application/cloudevents-batch+json"})
        connection.getresponse().read()
    wait_for(lambda: len(out.read_text().splitlines()) >= count if out.exists() else False,
             timeout=60, what="every latency sample")
    samples = [float(line) * 1000 for line in out.read_text().splitlines()]
    return [
        row("publish→invoke latency p50 at 1,000 events/s", percentile(samples, 50), "ms"),
        row("publish→invoke latency p99 at 1,000 events/s", percentile(samples, 99), "ms"),
    ]


def cold_starts(platform: RunningPlatform) -> list[dict[str, object]]:
    """Request a function with no replica; time until its answer, 15 times."""
    samples = []
    for _ in range(COLD_STARTS):
        wait_for(lambda: platform.function("cold")["replicas"] == [], timeout=10,
                 what="scale to zero")
        start = time.perf_counter()
        assert platform.request("GET", "/fn/cold").status == 200
        samples.append((time.perf_counter() - start) * 1000)
    warm = platform.request  # one more, warm, for reference
    start = time.perf_counter()
    warm("GET", "/fn/cold")
    warm_ms = (time.perf_counter() - start) * 1000
    return [
        row("scale from zero to first answer p50", statistics.median(samples), "ms"),
        row("scale from zero to first answer max", max(samples), "ms"),
        row("same request, warm", warm_ms, "ms"),
    ]


def gateway_versus_functions_framework(platform: RunningPlatform) -> list[dict[str, object]]:
    """One HTTP function: through Cumulo's gateway, and under functions-framework's server."""
    cumulo = load(platform.url + "/fn/hello", cloudevent=False)
    port = free_port()
    with running(ff_command("hello", port), port):
        ff = load(f"http://127.0.0.1:{port}/", cloudevent=False)
    return [
        row("http function via gateway + worker", cumulo, "req/s"),
        row("http function under functions-framework", ff, "req/s"),
        row("gateway ÷ functions-framework", cumulo / ff, "x"),
    ]


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(FIXTURE, project)
        out = Path(tmp) / "latency.txt"
        spec = project / "cumulo.yaml"
        spec.write_text(spec.read_text().replace("latency.txt", str(out)))
        platform = RunningPlatform(project, Path(tmp) / "state").start()
        try:
            return (dispatch_throughput(platform) + publish_to_invoke_latency(platform, out)
                    + cold_starts(platform) + gateway_versus_functions_framework(platform))
        finally:
            platform.stop()


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
