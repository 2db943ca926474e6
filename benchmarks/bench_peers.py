"""End-to-end dispatch to a no-op, Cumulo and the peers a user would pick instead, in one run.

    python benchmarks/bench_peers.py          # or: python benchmarks/run.py peers

Each system gets the same N events (``BENCH_PEERS_EVENTS``, default 20,000)
from this process on loopback, with a worker already running, and the clock
runs from the first publish until the consumer has recorded all N:

- Cumulo: ``cumulo up`` on its default SQLite bus (``synchronous=FULL``: an
  fsync every commit) with ``benchmarks/fixtures/platform``, events published
  over HTTP in batches of 500, counted by ``/api/status`` (trigger ``noop-0``);
- Dramatiq on its Redis broker: ``dramatiq --processes 1`` (default threads),
  events sent with ``actor.send``;
- Celery on its Redis broker: one worker, ``--pool prefork --concurrency 1``,
  events sent with ``task.delay``, no result backend;
- Dapr pub/sub self-hosted: ``daprd`` with a ``pubsub.redis`` component and a
  declarative Subscription pushing to a functions-framework CloudEvent function
  (what OpenFunction's async runtime runs), events published through daprd's
  HTTP bulk publish API in batches of 500.

Every peer's Redis runs with ``appendonly yes``, once with ``appendfsync
everysec`` (Redis's default) and once with ``appendfsync always`` (Cumulo's
durability). The peers' no-ops append one byte per message to a file
(``fixtures/peers/completions.py``), counted as its size. Every system is warmed
up with a few events first. ``BENCH_PEERS_ROUNDS`` rounds (default 2), in
alternating order; the best round of each system is reported, with the ratios
Cumulo ÷ each peer and Cumulo ÷ the best peer.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_platform import FIXTURE as PLATFORM_FIXTURE  # noqa: E402
from benchmarks.bench_platform import batch, delivered  # noqa: E402
from benchmarks.bench_worker import BIN, wait_until_serving  # noqa: E402
from tests.e2e.platform import RunningPlatform  # noqa: E402
from tests.servers.broker import HOST, BrokerProcess, find_binary, free_port  # noqa: E402
from tests.servers.dapr import daprd_binary, launch_daprd  # noqa: E402

PEERS = ROOT / "benchmarks" / "fixtures" / "peers"
EVENTS = int(os.environ.get("BENCH_PEERS_EVENTS", "20000"))
ROUNDS = int(os.environ.get("BENCH_PEERS_ROUNDS", "2"))
BATCH = 500
WARM_UP = 100
POLL = 0.02  # seconds between two looks at a completion counter, for every system
START_TIMEOUT = 60.0
FSYNCS = ("everysec", "always")
DAPR_TOPIC = "bench"
BULK_PUBLISH = f"/v1.0-alpha1/publish/bulk/pubsub/{DAPR_TOPIC}"
SUBSCRIPTION = {
    "apiVersion": "dapr.io/v2alpha1",
    "kind": "Subscription",
    "metadata": {"name": "noop"},
    "spec": {"pubsubname": "pubsub", "topic": DAPR_TOPIC, "routes": {"default": "/"}},
}
_modules = itertools.count()


def redis_component(redis_url: str) -> dict[str, Any]:
    """Dapr's ``pubsub.redis`` (Redis Streams) on ``redis_url``, every other setting its default."""
    parts = urlsplit(redis_url)
    metadata = [{"name": "redisHost", "value": f"{parts.hostname}:{parts.port}"},
                {"name": "redisPassword", "value": ""}]
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "pubsub"},
            "spec": {"type": "pubsub.redis", "version": "v1", "metadata": metadata}}


@dataclass
class Running:
    """A system ready for events: publish ``count`` of them from id ``first``; count completions."""

    publish: Callable[[int, int], None]
    completed: Callable[[], int]


@dataclass(frozen=True)
class System:
    """One column of the table: a name, its Redis fsync (peers only) and how to start it."""

    name: str
    fsync: str | None
    start: Callable[[Path, str | None], contextlib.AbstractContextManager[Running]]

    @property
    def label(self) -> str:
        return f"{self.name}, appendfsync {self.fsync}" if self.fsync else self.name


def row(benchmark: str, value: float, unit: str) -> dict[str, object]:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


class HttpPublisher:
    """One keep-alive HTTP connection that POSTs bodies and insists on a 2xx answer."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=60)

    def post(self, path: str, body: bytes, content_type: str) -> None:
        self.connection.request("POST", path, body, {"Content-Type": content_type})
        answer = self.connection.getresponse()
        text = answer.read()
        if not 200 <= answer.status < 300:
            raise RuntimeError(f"POST {path} answered {answer.status}: {text[:500]!r}")

    def close(self) -> None:
        self.connection.close()


def batches(first: int, count: int) -> Iterator[range]:
    for start in range(first, first + count, BATCH):
        yield range(start, min(start + BATCH, first + count))


# --- processes ------------------------------------------------------------------------------


@contextlib.contextmanager
def process(command: list[str], folder: Path, name: str, env: dict[str, str]) -> Iterator[None]:
    """``command`` in its own process group, logging to ``folder/name.log``; stopped at the end."""
    with (folder / f"{name}.log").open("ab") as log:
        child = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)  # what it forked and left behind


@contextlib.contextmanager
def redis_server(folder: Path, fsync: str) -> Iterator[str]:
    """A fresh redis-server, ``appendonly yes`` with ``appendfsync fsync``; its URL."""
    binary = find_binary("redis-server", "install-redis")

    def command(port: int, data: Path) -> list[str]:
        return [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "yes",
                "--appendfsync", fsync, "--dir", str(data)]

    server = BrokerProcess("redis-server", command, folder / "redis")
    server.start()
    try:
        yield f"redis://{HOST}:{server.port}/0"
    finally:
        server.stop()


def peer_env(folder: Path, redis_url: str) -> dict[str, str]:
    return {**os.environ, "PEERS_REDIS_URL": redis_url, "PEERS_DONE": str(folder / "done"),
            "PYTHONPATH": str(PEERS)}


def file_counter(path: Path) -> Callable[[], int]:
    def count() -> int:
        return path.stat().st_size if path.exists() else 0

    return count


def import_fixture(name: str, redis_url: str) -> ModuleType:
    """A fresh copy of ``fixtures/peers/<name>.py``, configured for ``redis_url``."""
    if str(PEERS) not in sys.path:
        sys.path.insert(0, str(PEERS))
    spec = importlib.util.spec_from_file_location(f"peers_{name}_{next(_modules)}",
                                                  PEERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, {"PEERS_REDIS_URL": redis_url}):
        spec.loader.exec_module(module)
    return module


# --- the systems ----------------------------------------------------------------------------


@contextlib.contextmanager
def cumulo(folder: Path, fsync: str | None) -> Iterator[Running]:
    project = folder / "project"
    shutil.copytree(PLATFORM_FIXTURE, project)
    platform = RunningPlatform(project, folder / "state").start()
    publisher = HttpPublisher(platform.url)

    def publish(first: int, count: int) -> None:
        for ids in batches(first, count):
            publisher.post("/events", batch("bench.noop", ids),
                           "application/cloudevents-batch+json")

    try:
        yield Running(publish, lambda: delivered(platform, "noop-0"))
    finally:
        publisher.close()
        platform.stop()


@contextlib.contextmanager
def dramatiq(folder: Path, fsync: str | None) -> Iterator[Running]:
    assert fsync is not None
    with redis_server(folder, fsync) as url:
        command = [str(BIN / "dramatiq"), "dramatiq_app", "--processes", "1", "--path", str(PEERS)]
        with process(command, folder, "dramatiq", peer_env(folder, url)):
            client = import_fixture("dramatiq_app", url)

            def publish(first: int, count: int) -> None:
                for n in range(first, first + count):
                    client.noop.send(n)

            try:
                yield Running(publish, file_counter(folder / "done"))
            finally:
                client.broker.close()


@contextlib.contextmanager
def celery(folder: Path, fsync: str | None) -> Iterator[Running]:
    assert fsync is not None
    with redis_server(folder, fsync) as url:
        command = [str(BIN / "celery"), "-A", "celery_app", "worker", "--pool", "prefork",
                   "--concurrency", "1", "--loglevel", "WARNING"]
        with process(command, folder, "celery", peer_env(folder, url)):
            client = import_fixture("celery_app", url)

            def publish(first: int, count: int) -> None:
                for n in range(first, first + count):
                    client.noop.delay(n)

            try:
                yield Running(publish, file_counter(folder / "done"))
            finally:
                client.app.close()


@contextlib.contextmanager
def dapr(folder: Path, fsync: str | None) -> Iterator[Running]:
    assert fsync is not None
    with redis_server(folder, fsync) as url:
        port = free_port()
        command = [str(BIN / "functions-framework"), "--target", "noop", "--source",
                   str(PEERS / "dapr_app.py"), "--signature-type", "cloudevent",
                   "--host", HOST, "--port", str(port)]
        with process(command, folder, "functions-framework", peer_env(folder, url)):
            wait_until_serving(port)
            sidecar = launch_daprd(folder / "daprd", [redis_component(url), SUBSCRIPTION],
                                   app_id="peers", app_port=port)
            publisher = HttpPublisher(f"http://{HOST}:{sidecar.http_port}")

            def publish(first: int, count: int) -> None:
                for ids in batches(first, count):
                    entries = [{"entryId": str(n), "event": {"n": n},
                                "contentType": "application/json"} for n in ids]
                    publisher.post(BULK_PUBLISH, json.dumps(entries).encode(), "application/json")

            try:
                yield Running(publish, file_counter(folder / "done"))
            finally:
                publisher.close()
                sidecar.stop()


SYSTEMS = [
    System("cumulo", None, cumulo),
    *(System(name, fsync, start) for name, start in
      (("dramatiq", dramatiq), ("celery", celery), ("dapr", dapr)) for fsync in FSYNCS),
]


# --- measuring ------------------------------------------------------------------------------


def warm_up(running: Running) -> None:
    """Publish single events until one completes (the consumer is live), then WARM_UP more."""
    deadline = time.monotonic() + START_TIMEOUT
    first = 10**9  # ids apart from the measured ones
    while running.completed() == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no warm-up event completed in {START_TIMEOUT:g}s")
        running.publish(first, 1)
        first += 1
        with contextlib.suppress(RuntimeError):
            wait_until(lambda: running.completed() > 0, 0.5, "the first completion")
    target = running.completed() + WARM_UP
    running.publish(first, WARM_UP)
    wait_until(lambda: running.completed() >= target, START_TIMEOUT, "the warm-up events")
    wait_until(settled(running.completed), START_TIMEOUT, "the warm-up events to settle")


def settled(count: Callable[[], int], polls: int = 10) -> Callable[[], bool]:
    """A predicate true once ``count()`` gave the same value ``polls`` times in a row."""
    seen: list[int] = []

    def check() -> bool:
        seen.append(count())
        return len(seen) >= polls and len(set(seen[-polls:])) == 1

    return check


def dispatch_rate(system: System, folder: Path, events: int) -> float:
    """Events/s from the first publish until the consumer has recorded ``events`` more."""
    try:
        with system.start(folder, system.fsync) as running:
            warm_up(running)
            before = running.completed()
            start = time.perf_counter()
            running.publish(0, events)
            wait_until(lambda: running.completed() - before >= events, 60 + events / 50,
                       f"{events} events through {system.label}")
            return events / (time.perf_counter() - start)
    except Exception as error:
        raise RuntimeError(f"{system.label}: {error}\n{log_tails(folder)}") from error


def log_tails(folder: Path, chars: int = 1500) -> str:
    """The end of every log under ``folder``, for a run that failed."""
    return "\n".join(f"--- {log.relative_to(folder)}:\n{log.read_text(errors='replace')[-chars:]}"
                     for log in sorted(folder.rglob("*.log")) + sorted(folder.rglob("*.out")))


def rounds(systems: list[System], events: int, count: int) -> dict[str, list[float]]:
    """Each system's rate per round; rounds alternate the order in which the systems run."""
    rates: dict[str, list[float]] = {system.label: [] for system in systems}
    for round_ in range(count):
        for system in systems if round_ % 2 == 0 else systems[::-1]:
            with tempfile.TemporaryDirectory(prefix="bench-peers-") as folder:
                rates[system.label].append(dispatch_rate(system, Path(folder), events))
    return rates


# --- the table ------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    redis = subprocess.run([find_binary("redis-server", "install-redis"), "--version"],
                           capture_output=True, text=True, check=True).stdout
    daprd = subprocess.run([str(daprd_binary()), "--version"],
                           capture_output=True, text=True, check=True).stdout
    match = re.search(r"v=(\S+)", redis)
    return {
        "cumulo": version("cumulo"),
        "dramatiq": version("dramatiq"),
        "celery": version("celery"),
        "dapr": f"{daprd.strip()} + functions-framework {version('functions-framework')}",
        "redis": match.group(1) if match else redis.strip(),
    }


def describe(system: System, known: dict[str, str]) -> str:
    if system.fsync is None:
        return f"cumulo {known['cumulo']}, sqlite bus, fsync every commit"
    setup = {
        "dramatiq": f"dramatiq {known['dramatiq']}, 1 process x 8 threads",
        "celery": f"celery {known['celery']}, prefork x 1",
        "dapr": f"dapr {known['dapr']}",
    }[system.name]
    return f"{setup}, redis {known['redis']} appendfsync {system.fsync}"


def table(rates: dict[str, list[float]], known: dict[str, str], events: int) -> list[dict[str, Any]]:
    """Best round per system, then Cumulo ÷ each peer and ÷ the best peer."""
    best = {label: max(values) for label, values in rates.items()}
    by_label = {system.label: system for system in SYSTEMS}
    rows = [row("events per round, published to a no-op", events, "events")]
    for label, values in rates.items():
        shown = " / ".join(f"{value:,.0f}" for value in values)
        goal = "; goal ≥ 6,000" if label == "cumulo" else ""
        rows.append(row(f"{describe(by_label[label], known)}: best of rounds {shown}{goal}",
                        best[label], "events/s"))
    ours = best.pop("cumulo")
    for label, value in best.items():
        rows.append(row(f"cumulo ÷ {label}", ours / value, "x"))
    top = max(best, key=best.__getitem__)
    rows.append(row(f"cumulo ÷ best peer ({top}); goal ≥ 2", ours / best[top], "x"))
    durable = {label: value for label, value in best.items() if label.endswith("always")}
    top = max(durable, key=durable.__getitem__)
    rows.append(row(f"cumulo ÷ best peer at equal durability ({top})", ours / durable[top], "x"))
    return rows


def run(events: int = EVENTS, count: int = ROUNDS) -> list[dict[str, Any]]:
    """Benchmark rows: ``{"benchmark", "value", "unit"}``."""
    known = versions()
    return table(rounds(SYSTEMS, events, count), known, events)


if __name__ == "__main__":
    for result in run(int(sys.argv[1]) if len(sys.argv) > 1 else EVENTS):
        print(json.dumps(result, ensure_ascii=False))
