"""A typed function without any parameter: loading it fails."""

from typing import Any

import functions_framework


class Person:
    """A valid input type, for a function that takes no input."""

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Person":
        return Person()


@functions_framework.typed(Person)
def function_typed_missing_parameter() -> None:
    return None
