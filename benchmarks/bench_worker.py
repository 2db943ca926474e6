"""Worker throughput: Cumulo's worker against functions-framework's own server.

Both serve the same functions (``benchmarks/fixtures/hello.py``) on loopback
and are loaded by the same client for the same time: ``wrk`` when installed
(``apt-get install -y wrk``), else an aiohttp client in a separate process
with N keep-alive connections. functions-framework runs as its CLI starts it
(gunicorn, gthread, 1 worker, 4 threads per CPU).

Rows: requests/s of an http function and of a no-op cloudevent function
(binary mode) under each server, and the ratio Cumulo / functions-framework.
The goal is a ratio of at least 1.5. Run standalone: ``python benchmarks/bench_worker.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "benchmarks" / "fixtures"
BIN = Path(sys.executable).parent
DURATION = float(os.environ.get("BENCH_DURATION", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
CE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "bench-1",
    "ce-source": "/bench",
    "ce-type": "dev.cumulo.bench",
    "content-type": "application/json",
}
CE_BODY = '{"n": 1}'

_WORKER = """
import sys
from pathlib import Path
from cumulo.runtimes.worker import build_app, load_target, serve
fn = load_target(sys.argv[1], Path(sys.argv[2]))
serve(build_app(fn, signature=None, name="bench"), port=int(sys.argv[3]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


@contextlib.contextmanager
def running(command: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_until_serving(port)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def cumulo_command(function: str, port: int) -> list[str]:
    return [sys.executable, "-c", _WORKER, f"hello:{function}", str(FIXTURES), str(port)]


def ff_command(function: str, port: int) -> list[str]:
    source = str(FIXTURES / "hello.py")
    ff = str(BIN / "functions-framework")
    return [ff, "--target", function, "--source", source, "--port", str(port)]


def warm_up(url: str, cloudevent: bool) -> None:
    data = CE_BODY.encode() if cloudevent else None
    request = urllib.request.Request(url, data=data, headers=CE_HEADERS if cloudevent else {})
    with urllib.request.urlopen(request) as response:
        response.read()


def load(url: str, cloudevent: bool) -> float:
    """Requests per second that the client achieved against ``url``."""
    warm_up(url, cloudevent)
    if shutil.which("wrk"):
        return _wrk(url, cloudevent)
    return _aiohttp(url, cloudevent)


def _wrk(url: str, cloudevent: bool) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        if cloudevent:
            script.write(f"wrk.method = 'POST'\nwrk.body = '{CE_BODY}'\n")
            for name, value in CE_HEADERS.items():
                script.write(f"wrk.headers['{name}'] = '{value}'\n")
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION:g}s", "-s", script.name, url]
    try:
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return float(match.group(1))


_AIOHTTP_CLIENT = """
import asyncio, json, sys, time
import aiohttp
url, cloudevent, duration, connections = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), int(sys.argv[4])
headers = json.loads(sys.argv[5]) if cloudevent else {}
body = sys.argv[6].encode() if cloudevent else None
async def one(session, deadline, counter):
    while time.monotonic() < deadline:
        async with session.request("POST" if cloudevent else "GET", url, data=body, headers=headers) as r:
            await r.read()
        counter[0] += 1
async def main():
    counter = [0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:
        start = time.monotonic(); deadline = start + duration
        await asyncio.gather(*(one(s, deadline, counter) for _ in range(connections)))
        print(counter[0] / (time.monotonic() - start))
asyncio.run(main())
"""


def _aiohttp(url: str, cloudevent: bool) -> float:
    arguments = [url, "1" if cloudevent else "0", str(DURATION), str(CONNECTIONS)]
    arguments += [json.dumps(CE_HEADERS), CE_BODY]
    command = [sys.executable, "-c", _AIOHTTP_CLIENT, *arguments]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])


def measure(server: str, function: str, cloudevent: bool) -> float:
    port = free_port()
    command = cumulo_command(function, port) if server == "cumulo" else ff_command(function, port)
    with running(command, port):
        return load(f"http://127.0.0.1:{port}/", cloudevent)


def compare(label: str, function: str, cloudevent: bool) -> list[dict]:
    cumulo = measure("cumulo", function, cloudevent)
    ff = measure("functions-framework", function, cloudevent)
    return [
        {"benchmark": f"worker_{label}_cumulo", "value": round(cumulo, 1), "unit": "req/s"},
        {
            "benchmark": f"worker_{label}_functions_framework",
            "value": round(ff, 1),
            "unit": "req/s",
        },
        {"benchmark": f"worker_{label}_ratio", "value": round(cumulo / ff, 2), "unit": "x"},
    ]


def run() -> list[dict]:
    """Benchmark rows: ``{"benchmark", "value", "unit"}``."""
    return compare("http", "hello", False) + compare("cloudevent", "noop", True)


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
