"""Logs a caught exception with its traceback, then answers normally."""

import logging

import flask


def function(request: flask.Request) -> str:
    try:
        raise LookupError("something the function looked for is missing")
    except LookupError:
        logging.exception("the function caught an error")
    return "OK"
