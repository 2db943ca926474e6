"""Answers with the HTTP method it was called with (Flask and Starlette alike)."""

from typing import Any


def function(request: Any) -> str:
    return str(request.method)
