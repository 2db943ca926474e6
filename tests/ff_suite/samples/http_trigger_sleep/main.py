"""Sleeps for ``mode`` milliseconds before answering."""

import time

import flask


def function(request: flask.Request) -> str:
    time.sleep(int(request.get_json()["mode"]) / 1000)
    return "OK"
