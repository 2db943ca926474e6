"""Sleeps for ``mode`` milliseconds, without blocking the loop, before answering."""

import asyncio

from starlette.requests import Request


async def function(request: Request) -> str:
    await asyncio.sleep(int((await request.json())["mode"]) / 1000)
    return "OK"
