"""Checks that a class defined here belongs to the module named after the file."""

from typing import Any


class Marker:
    """Any class: its ``__module__`` says which module the framework loaded."""


def function(request: Any) -> tuple[str, int]:
    if Marker.__module__ == "main":
        return "OK", 200
    return f"Marker lives in {Marker.__module__!r}, not 'main'", 500
