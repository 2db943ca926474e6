"""Typed functions: the framework builds the input from JSON and serialises the output."""

from typing import Any

import functions_framework


class Person:
    """The input most functions here take."""

    def __init__(self, name: str, age: int) -> None:
        self.name = name
        self.age = age

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Person":
        return Person(obj["name"], obj["age"])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "age": self.age}


class Country:
    """An output of another type than the input."""

    def __init__(self, country: str, population: int) -> None:
        self.country = country
        self.population = population

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Country":
        return Country(obj["country"], obj["population"])

    def to_dict(self) -> dict[str, Any]:
        return {"country": self.country, "population": self.population}


class Unbuildable:
    """A type whose ``from_dict`` always fails."""

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> "Unbuildable":
        raise ValueError(f"cannot build from {obj!r}")

    def to_dict(self) -> dict[str, Any]:
        return {}


@functions_framework.typed(Person)
def function_typed(person: Person) -> Person:
    return person


@functions_framework.typed
def function_typed_reflect(person: Person) -> Person:
    return person


@functions_framework.typed(Unbuildable)
def function_typed_faulty_from_dict(value: Unbuildable) -> Unbuildable:
    return value


@functions_framework.typed(Person)
def function_typed_different_types(person: Person) -> Country:
    return Country("Monaco", 40000)


@functions_framework.typed(Person)
def function_typed_no_return(person: Person) -> None:
    return None


@functions_framework.typed(Person)
def function_typed_string_return(person: Person) -> str:
    return f"Hello {person.name}"
