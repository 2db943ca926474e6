"""Checking what a source is sent: typed models, and problems that name the field.

A source reads only the fields it maps, through small pydantic models in strict
mode (a string is a string, an integer an integer; other fields are ignored). A
payload that does not fit is an :class:`InvalidEventError` whose problems say
where and what, in the payload's own terms: ``commits[0]: must be an object``,
``Records[0].s3.bucket.name: must be a string``. A problem never repeats the
value it was given.

The events a source makes are checked too, before anything is published: their
attributes, by the rules the gateway applies to ``POST /events``
(:mod:`cumulo.events.attributes`), and that their data can be stored (JSON nested deeper than the encoder allows, for instance, is a
400 at the edge, not a failure after the 202).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from cumulo.errors import InvalidEventError
from cumulo.events.attributes import EdgeRules, validate_attributes
from cumulo.events.event import Event, to_json

MAX_PROBLEMS = 10
"""How many problems one refusal lists (the rest are counted)."""
SOURCE_RULES = EdgeRules()
"""What a source's events must be: the spec's rules, strings without control characters."""

_PHRASES = {
    "missing": "is missing",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
}

P = TypeVar("P", bound="Payload")


class Payload(BaseModel):
    """Base of the payload models: strict types, unknown fields ignored, read-only."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


def location(loc: Iterable[int | str]) -> str:
    """``("commits", 0, "added")`` → ``commits[0].added``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def problems_of(error: ValidationError, where: str = "") -> list[str]:
    """One line per wrong field (at most :data:`MAX_PROBLEMS`, then how many more)."""
    found = error.errors(include_input=False, include_url=False, include_context=False)
    problems = []
    for item in found[:MAX_PROBLEMS]:
        message = item["msg"].removeprefix("Value error, ")
        phrase = _PHRASES.get(item["type"], message[:1].lower() + message[1:])
        path = location(item["loc"])
        problems.append(f"{where}{path}: {phrase}" if path else f"{where}{phrase}")
    if len(found) > MAX_PROBLEMS:
        problems.append(f"... and {len(found) - MAX_PROBLEMS} more")
    return problems


def parse(model: type[P], value: Any, where: str = "") -> P:
    """``value`` as ``model``; :class:`InvalidEventError` naming each wrong field."""
    try:
        return model.model_validate(value)
    except ValidationError as e:
        raise InvalidEventError(problems_of(e, where)) from None


def check_storable(events: Iterable[Event]) -> None:
    """:class:`InvalidEventError` unless every event has valid attributes and encodes."""
    for event in events:
        if problems := validate_attributes(event.attributes, SOURCE_RULES):
            raise InvalidEventError(problems)
        try:
            to_json(event)
        except (TypeError, InvalidEventError) as e:  # orjson's error, or the format's
            deep = "ecursion" in str(e)
            problem = (
                "data: nests deeper than 254 levels" if deep else f"data: cannot be stored ({e})"
            )
            raise InvalidEventError([problem]) from None
