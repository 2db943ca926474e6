"""Answers with text imported from a sibling module."""

import greeting
from starlette.requests import Request


async def function(request: Request) -> str:
    return greeting.TEXT
