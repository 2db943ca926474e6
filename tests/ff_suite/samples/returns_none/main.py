"""An HTTP function that forgets to answer."""

from typing import Any


def function(request: Any) -> None:
    return None
