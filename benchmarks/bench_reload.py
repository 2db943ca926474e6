"""Save and see: from saving a function's code to the next invocation running it.

    python benchmarks/bench_reload.py

A real `cumulo up` on a two-function project (one HTTP, one cloudevent). Each
round saves a new version of main.py, then calls the HTTP function (or
publishes an event) again and again until the answer (or the record the event
leaves) names the new version; the time from the save to that answer is one
sample.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.platform import RunningPlatform, cloudevent  # noqa: E402

ROUNDS = 10
GIVE_UP_SECONDS = 10.0

SPEC = """\
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: hello}
spec:
  handler: main:hello
  scale: {min: 1, max: 1}
---
apiVersion: cumulo.dev/v1alpha1
kind: Function
metadata: {name: record}
spec:
  handler: main:record
  env: {OUT: OUTFILE}
  scale: {min: 1, max: 1}
  triggers: [{filters: [{exact: {type: bench.record}}]}]
"""

CODE = """\
import os

import functions_framework

VERSION = "{version}"


@functions_framework.http
def hello(request):
    return VERSION


@functions_framework.cloud_event
def record(event):
    with open(os.environ["OUT"], "a") as out:
        out.write(f"{{event['id']}} {{VERSION}}\\n")
"""


def row(benchmark: str, value: float, unit: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit}


def until(answered: Callable[[], bool]) -> float:
    """Seconds until ``answered()`` is true (asked as fast as it answers)."""
    start = time.monotonic()
    while not answered():
        if time.monotonic() - start > GIVE_UP_SECONDS:
            raise TimeoutError("the new code never answered")
    return time.monotonic() - start


def sample(platform: RunningPlatform, main: Path, out: Path, version: str, http: bool) -> float:
    saved = time.monotonic()
    main.write_text(CODE.format(version=version))
    if http:
        until(lambda: platform.request("GET", "/fn/hello").body.decode() == version)
    else:
        counter = iter(range(10**6))

        def recorded_by_new_code() -> bool:
            event_id = f"{version}-{next(counter)}"
            platform.publish([cloudevent("bench.record", id=event_id)])
            wait_start = time.monotonic()
            while time.monotonic() - wait_start < 1.0:
                lines = out.read_text().splitlines() if out.exists() else []
                if f"{event_id} {version}" in lines:
                    return True
                if any(line.startswith(f"{event_id} ") for line in lines):
                    return False  # the old code took it
            return False

        until(recorded_by_new_code)
    return time.monotonic() - saved


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        out = Path(tmp) / "records.txt"
        (project / "cumulo.yaml").write_text(SPEC.replace("OUTFILE", str(out)))
        main = project / "main.py"
        main.write_text(CODE.format(version="v0"))
        platform = RunningPlatform(project, Path(tmp) / "state").start()
        try:
            results: dict[str, list[float]] = {"http": [], "event": []}
            for i in range(1, ROUNDS + 1):
                for kind in results:
                    version = f"{kind}{i}"
                    results[kind].append(sample(platform, main, out, version, kind == "http"))
                    time.sleep(0.2)  # let the old replicas finish leaving
            reloads = [platform.status()["reload"]["seconds"]]
        finally:
            platform.stop()
    return [
        row(
            "save → HTTP answer from the new code, p50",
            statistics.median(results["http"]) * 1e3,
            "ms",
        ),
        row("save → HTTP answer from the new code, max", max(results["http"]) * 1e3, "ms"),
        row(
            "save → event run by the new code, p50", statistics.median(results["event"]) * 1e3, "ms"
        ),
        row("save → event run by the new code, max", max(results["event"]) * 1e3, "ms"),
        row("the last reload, as the platform timed it", reloads[0] * 1e3, "ms"),
    ]


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result))
