"""Flask functions that read, print and log around the request's execution id."""

import logging
import time
from typing import Any

import flask

logger = logging.getLogger(__name__)


def function(request: flask.Request) -> dict[str, Any]:
    return {"execution_id": request.headers.get("Function-Execution-Id")}


def error(request: flask.Request) -> str:
    return str(1 / 0)


def print_message(request: flask.Request) -> str:
    print(request.get_json()["message"])
    return "OK"


def log_message(request: flask.Request) -> str:
    logger.warning(request.get_json()["message"])
    return "OK"


def sleep(request: flask.Request) -> str:
    message = request.get_json()["message"]
    logger.warning(message)
    time.sleep(1)
    logger.warning(message)
    return "OK"
