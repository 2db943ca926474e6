"""A typed function whose input type has no ``from_dict``: loading it fails."""

from typing import Any

import functions_framework


class Person:
    """Can be turned into JSON, but not built from it."""

    def to_dict(self) -> dict[str, Any]:
        return {}


@functions_framework.typed(Person)
def function_typed_missing_from_dict(person: Person) -> Person:
    return person
