"""Answers with the value of the environment variable named by ``mode``."""

import os

from starlette.requests import Request


async def function(request: Request) -> str:
    return os.environ.get((await request.json())["mode"], "")
