"""Takes 1.5 s to answer: longer than a 1 s request timeout, shorter than 2 s."""

import time
from typing import Any


def function(request: Any) -> str:
    time.sleep(1.5)
    return "OK"
