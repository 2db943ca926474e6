"""The ASGI twin of main.py: the answer is chosen by the ``mode`` in the JSON body."""

from starlette.requests import Request


async def function(request: Request) -> tuple[str, int]:
    mode = (await request.json())["mode"]
    if mode == "THROW":
        raise RuntimeError("the caller asked for an exception")
    if mode == "SUCCESS":
        return "success", 200
    return "failure", 400
