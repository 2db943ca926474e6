"""A typed function whose decorator and annotation disagree: loading it fails."""

from typing import Any

import functions_framework


class Person:
    """One input type."""

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Person":
        return Person()


class Animal:
    """Another input type."""

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Animal":
        return Animal()


@functions_framework.typed(Person)
def function_typed_mismatch_types(value: Animal) -> None:
    return None
