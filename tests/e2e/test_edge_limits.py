"""The gateway's edge: request heads and batches bounded, memory bounded, always answering.

The gateway's memory is read from ``/proc/<pid>/status`` of the ``cumulo up``
process: ``VmHWM``, its peak resident set, reset (``clear_refs``) once the
platform is idle, so it covers every moment of what the test sends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.e2e.conftest import write_project
from tests.e2e.platform import RunningPlatform

PROJECT = {
    "main.py": "def noop(request):\n    return 'ok'\n",
    "cumulo.yaml": "apiVersion: cumulo.dev/v1alpha1\nkind: Function\nmetadata: {name: noop}\n"
    "spec: {handler: 'main:noop'}\n",
}
MB = 1024 * 1024
BATCH_RSS_BOUND = 150 * MB
"""What decoding batches may add to the gateway's peak memory (docs/security.md)."""
HEADER_RSS_BOUND = 16 * MB
"""A 32 MB header must never be held: the peak grows by well under half of it."""
HEALTHZ_WITHIN = 1.0


def status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {name} for {pid}")


@contextmanager
def peak_growth(platform: RunningPlatform) -> Iterator[list[int]]:
    """Yields a list that holds, afterwards, how far the peak RSS rose above the idle RSS."""
    assert platform.process is not None
    pid = platform.process.pid
    time.sleep(0.5)  # settled after start-up
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from now
    idle = status_field(pid, "VmRSS")
    growth: list[int] = []
    yield growth
    growth.append(status_field(pid, "VmHWM") - idle)


def send_raw(platform: RunningPlatform, head: bytes) -> bytes:
    """Send a raw request head; the answer's first bytes (status line, headers, problem)."""
    host, port = platform.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def binary_head(extra: bytes) -> bytes:
    return (
        b"POST /events HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"ce-specversion: 1.0\r\nce-id: h-1\r\nce-source: /tests\r\nce-type: t\r\n"
        + extra
        + b"Content-Length: 2\r\n\r\n{}"
    )


def problem_in(answer: bytes) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    return json.loads(body)


@pytest.fixture
def platform(platform_factory, tmp_path) -> RunningPlatform:
    return platform_factory(write_project(tmp_path / "p", PROJECT))


def test_a_32_megabyte_header_is_431_and_never_held(platform: RunningPlatform) -> None:
    with peak_growth(platform) as growth:
        answer = send_raw(platform, binary_head(b"ce-big: " + b"a" * (32 * MB) + b"\r\n"))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert "max_header_bytes" in problem_in(answer)["detail"]
    assert growth[0] < HEADER_RSS_BOUND, f"peak RSS grew {growth[0] / MB:.0f} MB"
    assert platform.request("GET", "/healthz").status == 200
    assert platform.events("default") == []


def test_ten_thousand_headers_are_431(platform: RunningPlatform) -> None:
    many = b"".join(b"ce-x%d: v\r\n" % i for i in range(10_000))
    with peak_growth(platform) as growth:
        answer = send_raw(platform, binary_head(many))
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert problem_in(answer)["status"] == 431
    assert growth[0] < HEADER_RSS_BOUND
    assert platform.events("default") == []


def test_too_many_small_headers_are_431_naming_the_limit(platform: RunningPlatform) -> None:
    headers = {f"x-h{i}": "1" for i in range(150)}  # 2 kB in all: under the byte limit
    answer = platform.request("POST", "/events", b"{}", headers)
    assert answer.status == 431
    assert answer.headers["content-type"] == "application/problem+json"
    assert "header fields are over the max_headers limit of 100" in answer.json()["detail"]
    assert platform.request("GET", "/healthz").status == 200


def batch(count: int, data: str | None = None) -> bytes:
    events = []
    for i in range(count):
        event = {"specversion": "1.0", "id": f"e{i}", "source": "/tests", "type": "t"}
        if data is not None:
            event |= {"datacontenttype": "text/plain", "data": data}
        events.append(event)
    return json.dumps(events).encode()


def post_batch(platform: RunningPlatform, body: bytes, statuses: list[int]) -> None:
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    statuses.append(platform.request("POST", "/events", body, headers, timeout=60).status)


@contextmanager
def healthz_latencies(platform: RunningPlatform) -> Iterator[list[float]]:
    """Polls /healthz while the block runs; yields the latencies it measured."""
    latencies: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            began = time.monotonic()
            with urllib.request.urlopen(platform.url + "/healthz", timeout=30) as answer:
                answer.read()
            latencies.append(time.monotonic() - began)
            done.wait(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        yield latencies
    finally:
        done.set()
        poller.join()


def post_concurrently(platform: RunningPlatform, body: bytes, times: int) -> list[int]:
    statuses: list[int] = []
    posters = [
        threading.Thread(target=post_batch, args=(platform, body, statuses)) for _ in range(times)
    ]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join()
    return statuses


def test_a_100k_event_batch_is_413_with_memory_bounded(platform: RunningPlatform) -> None:
    body = batch(100_000)
    assert len(body) > 6 * MB
    with peak_growth(platform) as growth, healthz_latencies(platform) as latencies:
        answer = platform.request(
            "POST", "/events", body, {"Content-Type": "application/cloudevents-batch+json"}
        )
        three = post_concurrently(platform, body, 3)
    assert answer.status == 413
    assert "100000 events, over the max_batch_events limit of 1000" in answer.json()["detail"]
    assert three == [413, 413, 413]
    assert growth[0] < BATCH_RSS_BOUND, f"peak RSS grew {growth[0] / MB:.0f} MB"
    assert latencies and max(latencies) < HEALTHZ_WITHIN, max(latencies)
    assert platform.events("default") == []


def test_batches_at_the_limit_are_accepted_with_memory_bounded(platform: RunningPlatform) -> None:
    body = batch(1000, "x" * 7000)  # 1000 events, 7 MB: both limits nearly reached
    assert len(body) > 6 * MB
    with peak_growth(platform) as growth, healthz_latencies(platform) as latencies:
        statuses = post_concurrently(platform, body, 3)
    assert statuses == [202, 202, 202]
    assert growth[0] < BATCH_RSS_BOUND, f"peak RSS grew {growth[0] / MB:.0f} MB"
    assert latencies and max(latencies) < HEALTHZ_WITHIN, max(latencies)
    stored = platform.request("GET", "/api/events?topic=default&limit=5").json()
    assert [m["event"]["id"] for m in stored] == ["e0", "e1", "e2", "e3", "e4"]
