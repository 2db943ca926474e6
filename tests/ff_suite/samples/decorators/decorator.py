"""Functions whose signature type comes from functions-framework's decorators."""

import flask
import functions_framework
from cloudevents.http import CloudEvent


@functions_framework.cloud_event
def function_cloud_event(cloud_event: CloudEvent) -> None:
    if cloud_event["id"] != "my-id" or cloud_event.data != {"name": "john"}:
        raise ValueError(f"unexpected event {cloud_event!r}")


@functions_framework.http
def function_http(request: flask.Request) -> str:
    if request.get_json()["mode"] == "path":
        return request.path
    return "unknown mode"
