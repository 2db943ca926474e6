"""pytest plugin: functions-framework's tests, answered by a real server over real HTTP.

Loaded into the run of functions-framework's own tests (``-p ff_shim``; the runner copies this
file into the run folder under that name, as it must import with nothing but the standard
library, Flask, Starlette's dependencies and functions-framework). Before any test module is
imported it replaces ``functions_framework.create_app`` and
``functions_framework.aio.create_asgi_app``. Each call starts the server named by
$CUMULO_FF_SERVER as a subprocess on a free 127.0.0.1 port, with the test's os.environ at that
moment (tests monkeypatch it before calling) plus PYTHONUNBUFFERED=1:

- ``ff``:     python -m functions_framework --target T [--source S] [--signature-type X]
              --host 127.0.0.1 --port P [--asgi]
- ``cumulo``: python -m cumulo worker --target T [--source S] [--signature-type X]
              --port P [--asgi]

A target of None is passed as ``--target ""``: the CLI then does what ``create_app(None)``
does, falling back to $FUNCTION_TARGET and failing when that is unset. What comes back is, for
``create_app``, a Flask app whose catch-all route forwards every request with http.client
(method, raw path and query, the headers exactly as sent, the body) and answers what the server
answered, less the hop-by-hop headers; for ``create_asgi_app`` a plain ASGI app doing the same.
So ``app.test_client()`` and Starlette's TestClient work unchanged. A chunked answer is streamed
through; any other is read whole. Once a response has been read (a streamed one: also once its
headers are in), what the server wrote to its stdout and stderr meanwhile (reader threads
buffer the pipes) is written to sys.stdout and sys.stderr when the pipes have been quiet for
QUIET_SECONDS, so capsys and capfd see the logs.

A server that exits during start-up is turned into the exception it reported: the last line of
its stderr containing ``pkg.SomeError: message``, resolved by its last name in
functions_framework.exceptions and then builtins, is raised as ``SomeError(message)``; anything
else raises RuntimeError with the end of its stderr.

Servers are reused: when a later test asks for the same (target, source, signature type,
asgi, environment less $PYTEST_CURRENT_TEST), it gets the server an earlier, passing test
used, with whatever that server wrote in between thrown away. Measured on functions-
framework's server, this halves the run (about 60 s instead of 130 s, same outcomes), since
most tests of a parametrised group ask for the same two servers. The autouse fixture ends the
use of a test's servers when the test ends: a server of a failed test is always stopped (so one
wedged server cannot fail the tests after it), at most MAX_IDLE_SERVERS are kept, and stops run
in the background. CUMULO_FF_REUSE=0 gives every test fresh servers instead.
"""

from __future__ import annotations

import builtins
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Iterable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

SERVER_ENV = "CUMULO_FF_SERVER"
REUSE_ENV = "CUMULO_FF_REUSE"
QUIET_SECONDS = 0.1
START_TIMEOUT_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 3.0
MAX_IDLE_SERVERS = 8
HOP_BY_HOP = frozenset({"connection", "transfer-encoding", "keep-alive"})
_ERROR_LINE = re.compile(r"([\w.]*\w(?:Exception|Error)): (.*)")
# Set by pytest for each phase of each test; not part of what a server is started with.
_VOLATILE_ENV = frozenset({"PYTEST_CURRENT_TEST"})

_FAILED = pytest.StashKey[bool]()
Header = tuple[Any, Any]  # (name, value) as str or bytes: http.client takes either


class PipeReader:
    """Drains one pipe of a server in a thread, so the server never blocks on a full pipe."""

    def __init__(self, pipe: Any) -> None:
        self._fd = pipe.fileno()
        self._pipe = pipe
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self.last_activity = time.monotonic()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        with contextlib.suppress(OSError):  # closed under it by close(): nothing more to read
            while chunk := os.read(self._fd, 65536):
                with self._lock:
                    self._chunks.append(chunk)
                    self.last_activity = time.monotonic()

    def take(self) -> str:
        """Everything read since the last call."""
        with self._lock:
            data, self._chunks = b"".join(self._chunks), []
        return data.decode("utf-8", errors="replace")

    def wait_closed(self, timeout: float) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        self._thread.join(1.0)
        with contextlib.suppress(OSError):
            self._pipe.close()


class Server:
    """One server process under test, and the output it wrote that no test has seen yet."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.port = int(command[command.index("--port") + 1])
        self._owner_pid = os.getpid()
        self._relay_lock = threading.Lock()
        self.process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() ends its workers too
        )
        self.stdout = PipeReader(self.process.stdout)
        self.stderr = PipeReader(self.process.stderr)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_until_accepting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while self.alive():
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not accept within {START_TIMEOUT_SECONDS}s")
            time.sleep(0.02)
        self.stderr.wait_closed(5.0)
        report = self.stderr.take()
        self.stop()
        raise startup_error(report)

    def relay(self, wait_for_quiet: bool) -> None:
        """Copy what the server wrote to this process's sys.stdout and sys.stderr."""
        if os.getpid() != self._owner_pid:  # a forked child (test_timeouts' gunicorn)
            return
        if wait_for_quiet:
            self._wait_for_quiet()
        with self._relay_lock:
            for reader, stream in ((self.stdout, sys.stdout), (self.stderr, sys.stderr)):
                text = reader.take()
                if text:
                    stream.write(text)
                    stream.flush()

    def _wait_for_quiet(self) -> None:
        """Wait until neither pipe has brought anything for QUIET_SECONDS since the answer."""
        answered = time.monotonic()
        deadline = answered + 5.0
        while time.monotonic() < deadline:
            last = max(answered, self.stdout.last_activity, self.stderr.last_activity)
            quiet = time.monotonic() - last
            if quiet >= QUIET_SECONDS:
                return
            time.sleep(QUIET_SECONDS - quiet)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.stdout.close()
        self.stderr.close()


def startup_error(stderr: str) -> BaseException:
    """The exception a server reported on its way out, rebuilt in this process."""
    for line in reversed(stderr.splitlines()):
        match = _ERROR_LINE.search(line)
        if match:
            found = _exception_class(match.group(1).rsplit(".", 1)[-1])
            if found is not None:
                with contextlib.suppress(Exception):
                    return found(match.group(2))
            break
    tail = "\n".join(stderr.splitlines()[-40:])
    return RuntimeError(f"the server exited during start-up:\n{tail}")


def _exception_class(name: str) -> type[BaseException] | None:
    from functions_framework import exceptions

    for namespace in (exceptions, builtins):
        found = getattr(namespace, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    return None


def server_command(
    kind: str, target: Any, source: Any, signature_type: Any, asgi: bool, port: int
) -> list[str]:
    """The command line that serves one function with the server named by `kind`."""
    if kind == "ff":
        command = [sys.executable, "-m", "functions_framework"]
    elif kind == "cumulo":
        command = [sys.executable, "-m", "cumulo", "worker"]
    else:
        raise RuntimeError(f"${SERVER_ENV} must be ff or cumulo, not {kind!r}")
    command += ["--target", str(target or "")]
    if source is not None:
        command += ["--source", str(source)]
    if signature_type is not None:
        command += ["--signature-type", str(signature_type)]
    if kind == "ff":
        command += ["--host", "127.0.0.1"]
    command += ["--port", str(port)]
    return [*command, "--asgi"] if asgi else command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerPool:
    """Starts servers for the current test; afterwards stops them or keeps a few to reuse."""

    def __init__(self, reuse: bool, max_idle: int = MAX_IDLE_SERVERS) -> None:
        self._reuse = reuse
        self._max_idle = max_idle
        self._idle: OrderedDict[tuple[Any, ...], Server] = OrderedDict()
        self._in_test: list[tuple[tuple[Any, ...], Server]] = []
        self._stoppers: list[threading.Thread] = []

    def acquire(self, target: Any, source: Any, signature_type: Any, asgi: bool) -> Server:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        stable_env = frozenset((k, v) for k, v in env.items() if k not in _VOLATILE_ENV)
        key = (target, str(source), signature_type, asgi, stable_env)
        server = self._idle.pop(key, None)
        if server is not None and server.alive():
            server.stdout.take(), server.stderr.take()  # written before this test began
        else:
            if server is not None:
                self._stop_later(server)
            kind = os.environ.get(SERVER_ENV, "ff")
            command = server_command(kind, target, source, signature_type, asgi, free_port())
            server = Server(command, env)
            server.wait_until_accepting()
        self._in_test.append((key, server))
        return server

    def end_test(self, test_failed: bool) -> None:
        """Keep the servers of a passing test for reuse (when on); stop the others."""
        finished, self._in_test = self._in_test, []
        for key, server in finished:
            if self._reuse and not test_failed and server.alive() and key not in self._idle:
                self._idle[key] = server
            else:
                self._stop_later(server)
        while len(self._idle) > self._max_idle:
            self._stop_later(self._idle.popitem(last=False)[1])

    def stop_all(self) -> None:
        self.end_test(test_failed=True)
        while self._idle:
            self._stop_later(self._idle.popitem()[1])
        for stopper in self._stoppers:
            stopper.join()
        self._stoppers = []

    def _stop_later(self, server: Server) -> None:
        """Stop in the background: a graceful stop takes a while and nothing waits on it."""
        stopper = threading.Thread(target=server.stop, daemon=True)
        stopper.start()
        self._stoppers = [*(t for t in self._stoppers if t.is_alive()), stopper]


POOL = ServerPool(reuse=os.environ.get(REUSE_ENV, "1") == "1")


def open_upstream(
    server: Server, method: str, target: str, headers: Iterable[Header], body: bytes
) -> http.client.HTTPResponse:
    """Send one request to the server exactly as the test client built it."""
    server.relay(wait_for_quiet=False)  # output from before this request belongs before it
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=REQUEST_TIMEOUT_SECONDS
    )
    connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    has_length = False
    for name, value in headers:
        connection.putheader(name, value)
        has_length |= _text(name).lower() == "content-length"
    if body and not has_length:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body or None)
    return connection.getresponse()


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def end_to_end_headers(response: http.client.HTTPResponse) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]


def is_chunked(response: http.client.HTTPResponse) -> bool:
    return "chunked" in (response.getheader("Transfer-Encoding") or "").lower()


def read_then_relay(server: Server, response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read()
    finally:
        response.close()
        server.relay(wait_for_quiet=True)


def stream_then_relay(server: Server, response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The chunks of a streamed answer, then what the server wrote while streaming them."""
    try:
        while chunk := response.read1(65536):
            yield chunk
    finally:
        response.close()
        server.relay(wait_for_quiet=True)


def flask_proxy(server: Server) -> Any:
    """A Flask app that forwards every request on every path to `server`."""
    import flask
    from werkzeug.routing import Rule

    app = flask.Flask("cumulo_ff_proxy")
    app.testing = True  # a proxy failure reaches the test instead of passing for a 500
    app.url_map.add(Rule("/", defaults={"path": ""}, endpoint="forward"))
    app.url_map.add(Rule("/<path:path>", endpoint="forward"))
    app.view_functions["forward"] = lambda path: _forward_flask_request(server)
    return app


def _forward_flask_request(server: Server) -> Any:
    import flask

    request = flask.request
    target = request.environ.get("RAW_URI") or _raw_target(request.path, request.query_string)
    response = open_upstream(
        server, request.method, target, request.headers.items(), request.get_data()
    )
    status = f"{response.status} {response.reason}"
    headers = end_to_end_headers(response)
    body: Any
    if is_chunked(response) and request.method != "HEAD":
        server.relay(wait_for_quiet=True)  # seen even by a test that never reads the body
        body = stream_then_relay(server, response)
    else:
        body = read_then_relay(server, response)
    answer = flask.Response(body, status=status, headers=headers)
    if not any(name.lower() == "content-type" for name, _ in headers):
        del answer.headers["Content-Type"]  # Flask's default: not something the server said
    return answer


def _raw_target(path: str, query: bytes) -> str:
    target = quote(path, safe="/:@!$&'()*+,;=-._~%")
    return f"{target}?{query.decode('latin-1')}" if query else target


class AsgiProxy:
    """A plain ASGI app that forwards every HTTP request to `server`."""

    def __init__(self, server: Server) -> None:
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _answer_lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)
        else:
            raise RuntimeError(f"the proxy forwards HTTP only, not {scope['type']}")

    async def _forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from anyio.to_thread import run_sync

        body = await _read_body(receive)
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
        target = _raw_target(raw_path.decode("latin-1"), scope.get("query_string", b""))
        response = await run_sync(
            open_upstream, self.server, scope["method"], target, scope["headers"], body
        )
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in end_to_end_headers(response)
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if is_chunked(response):
            await run_sync(self.server.relay, True)  # what it wrote before streaming
            while chunk := await run_sync(response.read1, 65536):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await run_sync(read_then_relay, self.server, response)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            data = await run_sync(read_then_relay, self.server, response)
            await send({"type": "http.response.body", "body": data, "more_body": False})


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


async def _answer_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(target: Any = None, source: Any = None, signature_type: Any = None) -> Any:
    """Stands in for functions_framework.create_app."""
    return flask_proxy(POOL.acquire(target, source, signature_type, asgi=False))


def create_asgi_app(target: Any = None, source: Any = None, signature_type: Any = None) -> Any:
    """Stands in for functions_framework.aio.create_asgi_app."""
    return AsgiProxy(POOL.acquire(target, source, signature_type, asgi=True))


def pytest_configure(config: pytest.Config) -> None:
    import functions_framework
    import functions_framework.aio

    functions_framework.create_app = create_app
    functions_framework.aio.create_asgi_app = create_asgi_app


def pytest_unconfigure(config: pytest.Config) -> None:
    POOL.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _cumulo_ff_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every server a test started is stopped, or kept for reuse, when the test ends."""
    yield
    POOL.end_test(test_failed=request.node.stash.get(_FAILED, False))
