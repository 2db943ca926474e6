"""A background function: writes what it received to the file its data names."""

import json
from typing import Any


def function(data: dict[str, Any], context: Any) -> None:
    record = {"entryPoint": "function", "value": data["value"]}
    with open(data["filename"], "w", encoding="utf-8") as out:
        out.write(json.dumps(record))
