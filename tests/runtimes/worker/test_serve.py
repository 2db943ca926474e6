"""serve(): on a socket bound before fork, in the forked child; graceful shutdown on SIGTERM."""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time

from cumulo.runtimes.worker import build_app, serve
from tests.runtimes.worker.conftest import listening_socket


def slow_hello(request):
    if request.path == "/slow":
        time.sleep(1.0)
    return f"hello from {os.getpid()}"


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def fork_worker(app, sock) -> int:
    pid = os.fork()
    if pid == 0:  # the child: serve, then leave without running the parent's cleanup
        code = 1
        try:
            serve(app, sock=sock)
            code = 0
        finally:
            os._exit(code)
    return pid


def test_a_forked_child_serves_on_the_inherited_socket() -> None:
    sock = listening_socket()
    port = sock.getsockname()[1]
    app = build_app(slow_hello, signature="http", name="forked")  # built before the fork
    pid = fork_worker(app, sock)
    sock.close()  # the parent keeps no listener: only the child answers
    try:
        status, body = get(port, "/")
        assert (status, body) == (200, f"hello from {pid}".encode())
        assert get(port, "/_cumulo/health")[0] == 200
    finally:
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_sigterm_lets_the_request_in_flight_finish() -> None:
    sock = listening_socket()
    port = sock.getsockname()[1]
    pid = fork_worker(build_app(slow_hello, signature="http", name="graceful"), sock)
    sock.close()
    answers: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: answers.append(get(port, "/slow")))
    client.start()
    time.sleep(0.4)  # the request is now inside the function
    os.kill(pid, signal.SIGTERM)
    client.join(timeout=30)
    _, status = os.waitpid(pid, 0)
    assert answers == [(200, f"hello from {pid}".encode())]
    assert os.waitstatus_to_exitcode(status) == 0
