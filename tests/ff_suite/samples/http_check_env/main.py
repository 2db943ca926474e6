"""Answers with the value of the environment variable named by ``mode``."""

import os

import flask


def function(request: flask.Request) -> str:
    return os.environ.get(request.get_json()["mode"], "")
