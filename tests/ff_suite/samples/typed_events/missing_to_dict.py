"""A typed function whose result has no ``to_dict``: each call fails."""

from typing import Any

import functions_framework


class Person:
    """Can be built from JSON, but not turned back into it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Person":
        return Person(obj["name"])


@functions_framework.typed(Person)
def function_typed_missing_to_dict(person: Person) -> Person:
    return person
