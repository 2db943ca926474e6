"""Answers with the request's URL or path, as Starlette built them."""

from starlette.requests import Request


async def function(request: Request) -> str:
    if (await request.json())["mode"] == "url":
        return str(request.url)
    return request.url.path
