"""Imports its answer with a relative import, as a package's module would."""

from typing import Any

from .helpers import RESULT


def function(request: Any) -> str:
    return RESULT
