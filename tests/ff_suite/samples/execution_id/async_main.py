"""ASGI functions that read, print and log around the request's execution id."""

import asyncio
import logging
import sys
from typing import Any

from cloudevents.http import CloudEvent
from functions_framework import execution_id
from starlette.requests import Request

logger = logging.getLogger(__name__)


async def async_function(request: Request) -> dict[str, Any]:
    return {"execution_id": request.headers.get("Function-Execution-Id")}


async def async_error(request: Request) -> str:
    return str(1 / 0)


async def async_print_message(request: Request) -> str:
    print((await request.json())["message"])
    return "OK"


async def async_log_message(request: Request) -> str:
    logger.warning((await request.json())["message"])
    return "OK"


async def async_trace_test(request: Request) -> dict[str, Any]:
    context = execution_id._get_current_context()
    if context is None:
        return {"execution_id": None, "span_id": None}
    return {"execution_id": context.execution_id, "span_id": context.span_id}


async def async_sleep(request: Request) -> str:
    message = (await request.json())["message"]
    logger.warning(message)
    await asyncio.sleep(1)
    logger.warning(message)
    return "OK"


def sync_cloudevent_with_context(cloud_event: CloudEvent) -> None:
    context = execution_id._get_current_context()
    if context is None:
        print("No execution context in sync CloudEvent function!", file=sys.stderr)
    else:
        print(f"Execution ID in sync CloudEvent: {context.execution_id}", file=sys.stderr)


async def async_cloudevent_error(cloud_event: CloudEvent) -> None:
    raise ValueError("this CloudEvent function always fails")
