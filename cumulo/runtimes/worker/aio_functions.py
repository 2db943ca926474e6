"""Serving ``async def`` (and ``@functions_framework.aio.http``) http functions.

As in functions-framework's ASGI mode, the function gets a Starlette
``Request``; a str becomes a text response, a dict JSON, ``(content, status)``
either with that status, a Starlette ``Response`` is sent as is, and ``None``
or an uncaught exception gives 500 (``X-Google-Status: crash`` for the latter).
An async function is awaited on the event loop; a sync one runs in the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cumulo.runtimes.worker.asgi import LazyExecutor, Receive, Scope, Send
from cumulo.runtimes.worker.http_functions import CRASH_HEADER
from cumulo.runtimes.worker.target import is_async_callable

log = logging.getLogger("cumulo.worker")


def to_response(result: Any) -> Response:
    """A Starlette response from what an async http function returned."""
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        return Response(result)
    if isinstance(result, dict):
        return JSONResponse(result)
    if isinstance(result, tuple) and len(result) == 2:
        content, status = result
        if isinstance(content, dict):
            return JSONResponse(content, status_code=status)
        return Response(content, status_code=status)
    if result is None:
        return PlainTextResponse("No response returned", status_code=500)
    return result


class StarletteFunction:
    """ASGI handler for an http function that takes a Starlette request."""

    def __init__(self, fn: Callable[..., Any], *, name: str, pool: LazyExecutor):
        self.fn = fn
        self.name = name
        self.pool = pool
        self.is_async = is_async_callable(fn)

    async def _call(self, request: Request) -> Any:
        if self.is_async:
            return await self.fn(request)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool.get(), self.fn, request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = to_response(await self._call(Request(scope, receive)))
        except HTTPException as e:
            response = PlainTextResponse(e.detail, status_code=e.status_code, headers=e.headers)
        except Exception:
            log.exception("Exception on %s [%s]", scope["path"], scope["method"])
            headers = {CRASH_HEADER: "crash"}
            response = PlainTextResponse("Internal Server Error", 500, headers=headers)
        await response(scope, receive, send)
