"""Cost growth of a real `cumulo up` (issue 13, item 7): triggers, idle functions, retained events.

    python benchmarks/bench_scale.py          # BENCH_SCALE_QUICK=1: small sizes, a quick check

Triggers: a project of N no-op cloudevent functions, each with
``scale {min: 1, max: 1, concurrency: 64}`` and one trigger on its own event type
(``bench.t<i>``); 10,000 events of ``bench.t0`` are published in batches of 500 and
timed until ``fn0-0`` delivered them all. N functions rather than one function with
N triggers because that is what a project with 50 triggers looks like, and it costs
little here: 50 functions (50 templates, 50 workers) start in about 30 s on the
2-core machine. The other 49 triggers see every event and deliver none, so the
ratio 50 ÷ 1 measures what each trigger adds to the hot path (goal ≥ 0.8), and the
idle CPU of the whole process group what each adds at rest (goal: near zero).

Memory: 1 and 6 idle functions (``scale.min 0``: a template each, no worker); the
PSS of the platform and every process under it, and the difference per function.

Retained events: p50 of publish→202 (one event per POST), ``GET /api/status`` and
``GET /api/events?topic=archive&limit=100`` on an empty bus, then with 100,000
events retained on ``archive``, a topic no trigger reads. The probes are published
to ``archive`` too, so both page reads return 100 events.

Projects are written to a temporary directory at run time.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_platform import batch, delivered, row  # noqa: E402
from tests.e2e.platform import RunningPlatform, wait_for  # noqa: E402

QUICK = os.environ.get("BENCH_SCALE_QUICK") == "1"
TRIGGER_COUNTS = (1, 3) if QUICK else (1, 10, 50)
DISPATCH_EVENTS = 1_000 if QUICK else 10_000
RETAINED_EVENTS = 5_000 if QUICK else 100_000
SAMPLES = 100 if QUICK else 200  # ≥ 100, so the empty bus has a full page
IDLE_SECONDS = 2.0 if QUICK else 5.0
SETTLE_SECONDS = 2.0  # after every function is up, before anything is measured
IDLE_FUNCTIONS = (1, 6)
BATCH = {"Content-Type": "application/cloudevents-batch+json"}
MAIN = """import functions_framework


@functions_framework.cloud_event
def noop(event):
    return None
"""


def write_project(root: Path, functions: int, min_scale: int) -> Path:
    """``functions`` no-ops ``fn<i>``, each triggered by events of type ``bench.t<i>``."""
    root.mkdir(parents=True)
    (root / "main.py").write_text(MAIN)
    docs = [
        {
            "apiVersion": "cumulo.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": f"fn{i}"},
            "spec": {
                "handler": "main:noop",
                "scale": {"min": min_scale, "max": 1, "concurrency": 64},
                "triggers": [{"filters": [{"exact": {"type": f"bench.t{i}"}}]}],
            },
        }
        for i in range(functions)
    ]
    (root / "cumulo.yaml").write_text("---\n".join(json.dumps(doc) + "\n" for doc in docs))
    return root


def all_up(platform: RunningPlatform, functions: int, min_scale: int) -> bool:
    status = platform.status()["functions"]
    return len(status) == functions and all(
        f["template"] and (f["replicas"] or not min_scale) for f in status)


@contextlib.contextmanager
def started(tmp: Path, functions: int, min_scale: int) -> Iterator[tuple[RunningPlatform, float]]:
    """A `cumulo up` of that project, every function up and settled; and its start time (s)."""
    where = Path(tempfile.mkdtemp(prefix=f"{functions}-functions-", dir=tmp))
    project = write_project(where / "project", functions, min_scale)
    begin = time.perf_counter()
    platform = RunningPlatform(project, where / "state").start()
    try:
        wait_for(lambda: all_up(platform, functions, min_scale), timeout=300,
                 what=f"{functions} functions to start")
        startup = time.perf_counter() - begin
        time.sleep(SETTLE_SECONDS)
        yield platform, startup
    finally:
        platform.stop()


# --- the process group, from /proc -------------------------------------------

def group(pid: int) -> list[int]:
    """``pid`` and every process below it (templates, workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(parents.get(found[-1], []))
    return found


def cpu_ticks(pids: list[int]) -> dict[int, int]:
    """utime + stime of each process still there, in clock ticks."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return ticks


def idle_cpu(platform: RunningPlatform) -> float:
    """CPU the process group used over IDLE_SECONDS with nothing to do, in % of one core."""
    pid = platform.status()["pid"]
    before, start = cpu_ticks(group(pid)), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    after, elapsed = cpu_ticks(group(pid)), time.perf_counter() - start
    used = sum(t - before.get(p, 0) for p, t in after.items()) / os.sysconf("SC_CLK_TCK")
    return 100 * used / elapsed


def pss_mb(platform: RunningPlatform) -> float:
    """Proportional set size of the process group, in MB."""
    total_kb = 0
    for pid in group(platform.status()["pid"]):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


# --- 1. triggers -------------------------------------------------------------

def dispatch(platform: RunningPlatform) -> tuple[float, float]:
    """Publish DISPATCH_EVENTS of ``bench.t0``; events/s of the POSTs and end to end."""
    start = time.perf_counter()
    for first in range(0, DISPATCH_EVENTS, 500):
        answer = platform.request("POST", "/events", batch("bench.t0", range(first, first + 500)), BATCH)
        assert answer.status == 202, answer.body
    published = time.perf_counter() - start
    wait_for(lambda: delivered(platform, "fn0-0") >= DISPATCH_EVENTS, timeout=300,
             what="every event to be delivered")
    return DISPATCH_EVENTS / published, DISPATCH_EVENTS / (time.perf_counter() - start)


def trigger_rows(tmp: Path) -> list[dict[str, object]]:
    rows, end_to_end = [], {}
    for n in TRIGGER_COUNTS:
        with started(tmp, n, min_scale=1) as (platform, startup):
            idle = idle_cpu(platform)
            publish, end_to_end[n] = dispatch(platform)
        rows += [
            row(f"{n} triggers: startup ({n} functions, min 1)", startup, "s"),
            row(f"{n} triggers: idle CPU over {IDLE_SECONDS:g} s (process group)", idle, "% of a core"),
            row(f"{n} triggers: publish over HTTP (batches of 500)", publish, "events/s"),
            row(f"{n} triggers: end-to-end dispatch", end_to_end[n], "events/s"),
        ]
    most = TRIGGER_COUNTS[-1]
    rows.append(row(f"end-to-end {most} triggers ÷ 1 trigger (goal ≥ 0.8)",
                    end_to_end[most] / end_to_end[1], "x"))
    return rows


# --- 2. memory per idle function ---------------------------------------------

def memory_rows(tmp: Path) -> list[dict[str, object]]:
    pss = {}
    for n in IDLE_FUNCTIONS:
        with started(tmp, n, min_scale=0) as (platform, _):
            pss[n] = pss_mb(platform)
    few, many = IDLE_FUNCTIONS
    return [
        row(f"PSS of the process group, {few} idle function(s)", pss[few], "MB"),
        row(f"PSS of the process group, {many} idle function(s)", pss[many], "MB"),
        row("memory per idle function", (pss[many] - pss[few]) / (many - few), "MB"),
    ]


# --- 3. retained events ------------------------------------------------------

def p50_ms(call: Callable[[int], None]) -> float:
    samples = []
    for i in range(SAMPLES):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def latencies(platform: RunningPlatform, phase: str) -> dict[str, float]:
    """p50 of a single-event publish, /api/status and a page of /api/events (keep-alive)."""
    connection = http.client.HTTPConnection(platform.url.removeprefix("http://"))

    def ask(method: str, path: str, body: bytes | None = None, status: int = 200) -> None:
        connection.request(method, path, body, BATCH if body else {})
        answer = connection.getresponse()
        assert answer.status == status, answer.read()
        answer.read()

    try:
        return {
            "publish→202": p50_ms(lambda i: ask("POST", "/events?topic=archive",
                                                batch(f"bench.probe-{phase}", range(i, i + 1)), 202)),
            "GET /api/status": p50_ms(lambda _: ask("GET", "/api/status")),
            "GET /api/events?limit=100": p50_ms(lambda _: ask("GET", "/api/events?topic=archive&limit=100")),
        }
    finally:
        connection.close()


def retain(platform: RunningPlatform) -> None:
    """RETAINED_EVENTS on the ``archive`` topic, in batches of 1,000."""
    for first in range(0, RETAINED_EVENTS, 1000):
        answer = platform.request("POST", "/events?topic=archive",
                                  batch("bench.archive", range(first, first + 1000)), BATCH)
        assert answer.status == 202, answer.body


def retained_rows(tmp: Path) -> list[dict[str, object]]:
    with started(tmp, 1, min_scale=1) as (platform, _):
        empty = latencies(platform, "empty")
        retain(platform)
        full = latencies(platform, "full")
    rows = []
    for name in empty:
        rows += [
            row(f"{name} p50, empty bus", empty[name], "ms"),
            row(f"{name} p50, {RETAINED_EVENTS:,} events retained", full[name], "ms"),
            row(f"{name} p50, retained ÷ empty", full[name] / empty[name], "x"),
        ]
    return rows


def run() -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        return trigger_rows(Path(tmp)) + memory_rows(Path(tmp)) + retained_rows(Path(tmp))


if __name__ == "__main__":
    for result in run():
        print(json.dumps(result, ensure_ascii=False))
