"""Serving http functions the way functions-framework's ASGI mode does.

For ``async def`` functions, ``@functions_framework.aio.http`` ones, and any
http function under ``--asgi``: the function gets a Starlette ``Request``; a
str becomes a text response, a dict JSON, ``(content, status)`` either with
that status, a Starlette ``Response`` is sent as is, ``None`` is a 500 ``No
response returned``, and an uncaught exception a 500 ``Internal Server Error``
with ``X-Google-Status: crash`` (logged with its traceback). ``GET
/robots.txt`` and ``/favicon.ico`` are 404. Each request runs in its execution
context; an async function is awaited on the event loop, a sync one runs in
the pool with that context.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import traceback
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cumulo.runtimes.worker.asgi import LazyExecutor, Receive, Scope, Send, header_dict
from cumulo.runtimes.worker.contract import CRASH, CRASH_HEADER_NAME
from cumulo.runtimes.worker.execution import executing
from cumulo.runtimes.worker.target import is_async_callable

log = logging.getLogger()  # functions-framework logs crashes on the root logger
METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"})
NOT_FOUND_PATHS = frozenset({"/robots.txt", "/favicon.ico"})
CRASH_HEADERS = {CRASH_HEADER_NAME: CRASH}


def to_response(result: Any) -> Response:
    """A Starlette response from what an http function returned."""
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
        raise HTTPException(status_code=500, detail="No response returned")
    return result  # type: ignore[no-any-return]


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
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool.get(), context.run, self.fn, request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in METHODS:
            response: Response = PlainTextResponse("Method Not Allowed", 405)
        elif scope["path"] in NOT_FOUND_PATHS and scope["method"] in ("GET", "HEAD"):
            response = PlainTextResponse("Not Found", 404)
        else:
            with executing(header_dict(scope)):
                response = await self._respond(scope, receive)
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        try:
            return to_response(await self._call(Request(scope, receive)))
        except HTTPException as e:
            return PlainTextResponse(e.detail, status_code=e.status_code, headers=e.headers)
        except Exception as e:
            trace = "".join(traceback.format_exception(e)).rstrip()
            log.error("Exception on %s [%s]\n%s", scope["path"], scope["method"], trace)
            return PlainTextResponse("Internal Server Error", 500, headers=CRASH_HEADERS)
