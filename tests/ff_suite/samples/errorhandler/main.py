"""Registers an error handler through ``functions_framework.errorhandler``."""

import flask
import functions_framework


class TeapotError(Exception):
    """Raised by the function; the handler below turns it into a 418."""


@functions_framework.errorhandler(TeapotError)
def answer_as_teapot(error: TeapotError) -> tuple[str, int]:
    return "I'm a teapot", 418


def function(request: flask.Request) -> str:
    raise TeapotError
