"""http functions: an unmodified functions-framework function answers as under functions-framework."""

from __future__ import annotations

from pathlib import Path

import functions_framework
import pytest

from tests.runtimes.worker import ff_functions

SOURCE = Path(ff_functions.__file__)
COMPARED_HEADERS = ("content-type", "x-custom", "x-google-status")


@pytest.fixture(scope="module")
def reference():
    """functions-framework's own Flask app for ``ff_echo``, and its test client."""
    return functions_framework.create_app("ff_echo", str(SOURCE), "http").test_client()


REQUESTS = [
    ("GET", "/", {}, b""),
    ("GET", "/any/path?name=ada", {}, b""),
    ("GET", "/?action=dict&name=a&name=b", {}, b""),
    ("POST", "/submit?action=json", {"Content-Type": "application/json"}, b'{"x": [1, 2]}'),
    ("PUT", "/?action=json", {"Content-Type": "application/json"}, b"not json"),
    ("GET", "/?action=tuple", {}, b""),
    ("GET", "/?action=abort", {}, b""),
    ("GET", "/?action=crash", {}, b""),
    ("GET", "/?action=headers", {"X-Agent": "test", "Content-Type": "text/csv"}, b""),
    ("GET", "/robots.txt", {}, b""),
    ("GET", "/favicon.ico", {}, b""),
    ("DELETE", "/?name=d%C3%A9j%C3%A0", {}, b""),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), REQUESTS)
def test_same_response_as_functions_framework(serve, reference, method, path, headers, body):
    ours = serve(ff_functions.ff_echo).request(method, path, headers, body)
    theirs = reference.open(path, method=method, headers=headers, data=body)
    assert ours.status == theirs.status_code
    assert ours.body == theirs.get_data()
    for name in COMPARED_HEADERS:
        assert ours.headers.get(name) == theirs.headers.get(name), name


def test_signature_comes_from_the_decorator(serve) -> None:
    reply = serve(ff_functions.ff_echo).request("GET", "/_cumulo/health")
    assert reply.json()["signature"] == "http"


def test_an_unregistered_function_is_http(serve) -> None:
    def plain(request):
        return {"path": request.path}

    assert serve(plain).request("GET", "/p").json() == {"path": "/p"}


def test_body_over_the_limit_is_413(serve) -> None:
    reply = serve(ff_functions.ff_echo, max_body_bytes=10).request("POST", "/", {}, b"x" * 11)
    assert reply.status == 413


def test_concurrent_requests_use_the_pool(serve) -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    barrier = threading.Barrier(4, timeout=10)

    def meet(request):
        barrier.wait()
        return "met"

    worker = serve(meet, concurrency=4)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: worker.request("GET", "/"), range(4)))
    assert [r.body for r in replies] == [b"met"] * 4
    assert time.monotonic() - started < 10


class TestAsyncFunctions:
    def test_async_function_gets_a_starlette_request(self, serve) -> None:
        reply = serve(ff_functions.ff_async_hello).request("POST", "/", {}, b"12345")
        assert (reply.status, reply.body) == (200, b"async POST 5")

    def test_tuple_with_dict(self, serve) -> None:
        reply = serve(ff_functions.ff_async_hello).request("GET", "/?action=tuple")
        assert (reply.status, reply.json()) == (201, {"created": True})

    def test_plain_async_def(self, serve) -> None:
        async def crash(request):
            raise RuntimeError("async boom")

        reply = serve(crash).request("GET", "/")
        assert reply.status == 500 and reply.headers["x-google-status"] == "crash"
