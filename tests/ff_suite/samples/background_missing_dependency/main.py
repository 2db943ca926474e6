"""A source file that imports a package nobody installed."""

from typing import Any

import nonexistentpackage  # noqa: F401


def function(data: Any, context: Any) -> None:
    return None
