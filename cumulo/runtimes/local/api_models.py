"""The typed edge of the gateway's ``/api``: one pydantic model per query and body.

The handlers parse every request through these models
(:mod:`cumulo.runtimes.local.api_input`) and the OpenAPI document is generated
from the same models (:mod:`cumulo.runtimes.local.openapi`), so what is
documented is what is checked. Every number is bounded, every name has a
length, every time is RFC 3339 or Unix seconds; anything else is a 400 that
names the field and the rule.

What depends on the platform's state (an offset past a topic's end, an
unknown trigger) is checked after parsing, by the bus
(:func:`cumulo.events.bus.base.check_replay_start`) and the handlers.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

MAX_OFFSET = 2**63 - 1  # a signed 64-bit integer: SQLite's INTEGER, Kafka's and NATS' offsets
MAX_NAME = 256  # bus, topic, trigger and function names, text filters
MAX_EVENTS_PAGE = 10_000  # GET /api/events?limit=
MAX_SEARCH_LIMIT = 1_000  # GET /api/events/search?limit= and /ui/events
MAX_RUNS_LIMIT = 1_000  # GET /api/runs?limit=
MAX_TOKEN = 4_096  # a browser keeps cookies up to about this size
COOKIE_OCTETS = r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$"  # RFC 6265: what a cookie holds

_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _decimal_integer(value: Any) -> Any:
    """A query's text as an integer, only when it is written as one (no ``1.0``, ``1_000``)."""
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise ValueError("must be a decimal integer")
        return int(value)
    return value


def parse_instant(value: Any) -> float:
    """Unix seconds from a number or text: Unix seconds, or an RFC 3339 date-time.

    A date-time without a zone (what a browser's ``datetime-local`` input sends)
    is local time. A leap second (``:60``) counts as the next second.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be Unix seconds or an RFC 3339 date-time")
    if isinstance(value, str):
        value = _instant_of_text(value.strip())
    if not math.isfinite(value):
        raise ValueError("must be a finite time")
    return float(value)


def _instant_of_text(text: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    if not _DATE_TIME.fullmatch(text):
        raise ValueError("must be Unix seconds or an RFC 3339 date-time, e.g. 2024-05-01T12:00:00Z")
    leap = text[17:19] == "60"
    if leap:
        text = text[:17] + "59" + text[19:]
    try:
        moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        return moment.timestamp() + leap
    except (ValueError, OverflowError, OSError) as e:
        raise ValueError(f"is not a valid date-time ({e})") from None


def _json_integer(value: Any) -> Any:
    """A JSON integer: ``7.0`` is one (JSON Schema says so), ``true`` and ``"7"`` are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


QueryInt = Annotated[int, BeforeValidator(_decimal_integer)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET), BeforeValidator(_decimal_integer)]
JsonOffset = Annotated[int, Field(ge=0, le=MAX_OFFSET), BeforeValidator(_json_integer)]
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Filter = Annotated[str, Field(max_length=MAX_NAME)]
INSTANT_SCHEMA = {
    "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}],
    "description": "Unix seconds, or an RFC 3339 date-time (without a zone: local time).",
}
Instant = Annotated[float, BeforeValidator(parse_instant), WithJsonSchema(INSTANT_SCHEMA)]
QUERY_INSTANT_SCHEMA = {
    "anyOf": [*INSTANT_SCHEMA["anyOf"], {"type": "string", "maxLength": 0}],
    "description": "Unix seconds, or an RFC 3339 date-time (without a zone: local time);"
    " empty: no bound (what an empty field of the dashboard's form sends).",
}
QueryInstant = Annotated[
    float, BeforeValidator(parse_instant), WithJsonSchema(QUERY_INSTANT_SCHEMA)
]


class Query(BaseModel):
    """A query string's parameters; unknown ones are ignored, as browsers add their own."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class BusQuery(Query):
    bus: Name = Field("default", description="The event bus.")


class TopicQuery(BusQuery):
    topic: Name = Field("default", description="The topic.")


class EventsQuery(TopicQuery):
    """``GET /api/events``: a page of a topic, in offset order."""

    after: Offset = Field(0, description="Only offsets after this one.")
    limit: QueryInt = Field(100, ge=1, le=MAX_EVENTS_PAGE, description="At most this many.")


class SearchQuery(TopicQuery):
    """``GET /api/events/search`` and ``/ui/events``: events matching filters."""

    type: Filter = Field("", description="Only events whose type contains this.")
    source: Filter = Field("", description="Only events whose source contains this.")
    subject: Filter = Field("", description="Only events whose subject contains this.")
    since: QueryInstant | None = Field(None, description="Published at or after.")
    until: QueryInstant | None = Field(None, description="Published at or before.")
    limit: QueryInt = Field(100, ge=1, le=MAX_SEARCH_LIMIT, description="At most this many.")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        """An empty field of the dashboard's search form means no filter."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k in ("since", "until") and v == "")}
        return data


class RunsQuery(Query):
    """``GET /api/runs`` and ``/ui/runs``: job runs, newest first."""

    function: Filter = Field("", description="Only this function's runs.")
    limit: QueryInt = Field(200, ge=1, le=MAX_RUNS_LIMIT, description="At most this many.")


class DeadLettersQuery(BusQuery):
    """``GET /api/dead-letters``, ``/ui/dead-letters`` and redrive: one dead-letter topic."""

    topic: Name | None = Field(
        None, description="Default: the first of the triggers' dead-letter topics."
    )


class PageQuery(Query):
    """What every ``/ui/`` page takes besides its own query: the token, once."""

    token: str | None = Field(
        None,
        max_length=MAX_TOKEN,
        pattern=COOKIE_OCTETS,
        description="The API token, once: it becomes an HttpOnly cookie (303 to the same page).",
    )


class RedrivePath(BaseModel):
    offset: Offset = Field(description="The dead letter's offset.")


class Replay(BaseModel):
    """``POST /api/replay``: deliver a trigger's (or every trigger's on a topic) events again."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "allOf": [
                {"oneOf": [{"required": ["trigger"]}, {"required": ["topic"]}]},
                {"oneOf": [{"required": ["fromOffset"]}, {"required": ["fromTime"]}]},
            ]
        },
    )

    bus: Name | None = Field(None, description="Default: the trigger's bus.")
    trigger: Name | None = Field(None, description="One trigger's group.")
    topic: Name | None = Field(None, description="Every group on this topic.")
    from_offset: JsonOffset | None = Field(
        None,
        alias="fromOffset",
        description="Deliver again from this offset: 0 up to one past the topic's last offset.",
    )
    from_time: Instant | None = Field(
        None,
        alias="fromTime",
        description="Deliver again what was published at or after this time (not in the future;"
        " before 1970 means from the start).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: leave a field out rather than null")
        return data

    @model_validator(mode="after")
    def _one_target_and_one_start(self) -> Replay:
        if (self.trigger is None) == (self.topic is None):
            raise ValueError("give exactly one of 'trigger' and 'topic'")
        if (self.from_offset is None) == (self.from_time is None):
            raise ValueError("give exactly one of 'fromOffset' and 'fromTime'")
        return self

    @property
    def start_time(self) -> float | None:
        """``fromTime``, a time before 1970 taken as 1970 (from the start)."""
        return None if self.from_time is None else max(self.from_time, 0.0)
