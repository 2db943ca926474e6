"""Several background functions in one file, plus a name that is not a function."""

import json
from typing import Any

notAFunction = "a string, not a function"


def fun(entry_point: str, data: dict[str, Any]) -> None:
    record = {"entryPoint": entry_point, "value": data["value"]}
    with open(data["filename"], "w", encoding="utf-8") as out:
        out.write(json.dumps(record))


def myFunctionFoo(data: dict[str, Any], context: Any) -> None:
    fun("myFunctionFoo", data)


def myFunctionBar(data: dict[str, Any], context: Any) -> None:
    fun("myFunctionBar", data)
