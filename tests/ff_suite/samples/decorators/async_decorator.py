"""Functions registered with functions-framework's ``aio`` decorators, async and sync."""

from typing import Any

from cloudevents.http import CloudEvent
from functions_framework import aio
from starlette.requests import Request


def _check(cloud_event: CloudEvent) -> None:
    if cloud_event["id"] != "my-id" or cloud_event.data != {"name": "john"}:
        raise ValueError(f"unexpected event {cloud_event!r}")


@aio.cloud_event
async def function_cloud_event(cloud_event: CloudEvent) -> None:
    _check(cloud_event)


@aio.cloud_event
def function_cloud_event_sync(cloud_event: CloudEvent) -> None:
    _check(cloud_event)


@aio.http
async def function_http(request: Request) -> str:
    if (await request.json())["mode"] == "path":
        return request.url.path
    return "unknown mode"


@aio.http
def function_http_sync(request: Request) -> str:
    if request.query_params.get("mode") == "path":
        return request.url.path
    return "sync response"


@aio.http
async def function_http_dict_response(request: Request) -> dict[str, Any]:
    return {"message": "hello", "count": 42, "success": True}
