"""Request heads bounded at the gateway's edge: 431 before any body is read.

Two layers, because each sees what the other cannot:

- :func:`bounded_httptools` is uvicorn's httptools protocol with the head
  (request line and headers) of each request limited to ``max_header_bytes``.
  httptools keeps a header's value in memory until the value ends, so one
  32 MB header would be held whole before the app saw anything; this
  protocol feeds the parser no more than the limit, then answers 431 and
  reads the rest of what the client is sending to /dev/null until it stops
  (or :data:`LINGER_SECONDS` pass), so the client can read the answer.
- :class:`HeaderLimits` is ASGI middleware, ordered before authentication,
  that refuses (431) a request with more than ``max_headers`` fields or more
  than ``max_header_bytes`` of them: what a parser under the byte limit
  still lets through, and the rule for any server the app runs under.

Both answer with an RFC 9457 problem that names the limit, never echoing the
request.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from cumulo.runtimes.worker import contract

LINGER_SECONDS = 5.0
STATUS_LINE = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
ERROR_TYPE = "HeaderLimitExceeded"
_FIELD_OVERHEAD = 4  # ": " and CRLF


def too_large(detail: str) -> contract.Response:
    """The 431 problem for a request head over a limit."""
    title = "Request header fields too large"
    return contract.problem(431, "header-fields-too-large", title, detail, ERROR_TYPE)


class HeaderLimits:
    """ASGI middleware: 431 for too many header fields, or too many bytes of them."""

    def __init__(self, app: Any, *, max_headers: int, max_header_bytes: int):
        self.app = app
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        problem = self.problem(scope["headers"]) if scope["type"] == "http" else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = too_large(problem)
        headers = [*response.headers, (b"content-length", str(len(response.body)).encode())]
        headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 431, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})

    def problem(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """What is over a limit in these header fields, or None."""
        if len(headers) > self.max_headers:
            return (
                f"{len(headers)} header fields are over the max_headers limit of {self.max_headers}"
            )
        size = sum(len(name) + len(value) + _FIELD_OVERHEAD for name, value in headers)
        if size > self.max_header_bytes:
            return (
                f"the header fields are over the max_header_bytes limit of {self.max_header_bytes}"
            )
        return None


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, feeding the parser at most ``max_header_bytes`` of a head."""

    max_header_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._in_head = True  # the bytes now arriving belong to a request line or headers
        self._head_bytes = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: what the client still sends is dropped unread
        while self._in_head and data:
            room = self.max_header_bytes - self._head_bytes
            if room <= 0:
                self._refuse()
                return
            piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
            self._head_bytes += len(piece)
            super().data_received(piece)
            if self.transport.is_closing():
                return
        if data:
            super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        super().on_message_complete()

    def _refuse(self) -> None:
        """Answer 431, then drop what still arrives until the client stops or time is up."""
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer now would cut into the one being sent
            return
        limit = self.max_header_bytes
        response = too_large(f"the request head is over the max_header_bytes limit of {limit}")
        head = [STATUS_LINE]
        for name, value in [*response.headers, (b"connection", b"close")]:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-length: " + str(len(response.body)).encode() + b"\r\n\r\n")
        self.transport.write(b"".join(head) + response.body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def bounded_httptools(max_header_bytes: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``) for this limit."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes},
    )
