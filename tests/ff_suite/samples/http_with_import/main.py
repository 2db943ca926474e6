"""Answers with text imported from a sibling module."""

import flask
import greeting


def function(request: flask.Request) -> str:
    return greeting.TEXT
