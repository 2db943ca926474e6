"""Streams the running total of the numbers in the body, one line per number."""

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import StreamingResponse


async def function(request: Request) -> StreamingResponse:
    numbers = (await request.body()).decode().split()

    async def running_totals() -> AsyncIterator[str]:
        total = 0.0
        for number in numbers:
            total += float(number)
            yield f"{total}\n"

    return StreamingResponse(running_totals())
