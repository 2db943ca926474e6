"""The typed edge of ``/api``: what each query and body model takes and refuses."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cumulo.runtimes.local.api_models import (
    MAX_EVENTS_PAGE,
    MAX_OFFSET,
    MAX_RUNS_LIMIT,
    MAX_SEARCH_LIMIT,
    DeadLettersQuery,
    EventsQuery,
    PageQuery,
    RedrivePath,
    Replay,
    RunsQuery,
    SearchQuery,
    parse_instant,
)


def rules_broken(model: type, data: Any) -> set[tuple[str, str]]:
    """(field, rule) of every error validating ``data`` as ``model``."""
    with pytest.raises(ValidationError) as refused:
        model.model_validate(data)  # type: ignore[attr-defined]
    return {(".".join(map(str, e["loc"])), e["type"]) for e in refused.value.errors()}


# --- instants ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (1714564800, 1714564800.0),
        (1714564800.25, 1714564800.25),
        ("1714564800", 1714564800.0),
        (" 1.5e3 ", 1500.0),
        (".5", 0.5),
        ("-10", -10.0),
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01t12:00:00z", 1714564800.0),
        ("2024-05-01 14:00:00+02:00", 1714564800.0),
        ("2024-05-01T12:00:00.250Z", 1714564800.25),
        ("2024-05-01T12:00Z", 1714564800.0),
        ("2016-12-31T23:59:60Z", 1483228800.0),  # a leap second: the next second
    ],
)
def test_an_instant_is_unix_seconds_or_an_rfc3339_date_time(given: Any, seconds: float) -> None:
    assert parse_instant(given) == seconds


def test_a_date_time_without_a_zone_is_local_time() -> None:
    assert parse_instant("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12).timestamp()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (True, "must be Unix seconds or an RFC 3339 date-time"),
        (None, "must be Unix seconds or an RFC 3339 date-time"),
        ([1], "must be Unix seconds or an RFC 3339 date-time"),
        ("yesterday", "e.g. 2024-05-01T12:00:00Z"),
        ("2024-05-01", "e.g. 2024-05-01T12:00:00Z"),
        ("2024-13-01T00:00:00Z", "is not a valid date-time"),
        ("2024-02-30T00:00:00Z", "is not a valid date-time"),
        (math.inf, "must be a finite time"),
        ("nan", "e.g. 2024"),
        ("1e999", "must be a finite time"),
    ],
)
def test_anything_else_is_refused_saying_what_an_instant_is(given: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        parse_instant(given)


# --- queries ---------------------------------------------------------------------


def test_an_events_query_has_its_defaults_and_ignores_unknown_parameters() -> None:
    assert EventsQuery.model_validate({"_": "1"}) == EventsQuery(
        bus="default", topic="default", after=0, limit=100
    )


@pytest.mark.parametrize("text", ["1.0", "1_000", "0x10", "1e3", "", " 5", "+5"])
def test_a_query_integer_must_be_written_as_one(text: str) -> None:
    assert ("limit", "value_error") in rules_broken(EventsQuery, {"limit": text})


def test_query_integers_are_bounded() -> None:
    assert (
        EventsQuery.model_validate({"after": str(MAX_OFFSET), "limit": str(MAX_EVENTS_PAGE)}).after
        == MAX_OFFSET
    )
    assert rules_broken(EventsQuery, {"after": str(MAX_OFFSET + 1)}) == {
        ("after", "less_than_equal")
    }
    assert rules_broken(EventsQuery, {"limit": "0"}) == {("limit", "greater_than_equal")}
    assert rules_broken(EventsQuery, {"limit": str(MAX_EVENTS_PAGE + 1)}) == {
        ("limit", "less_than_equal")
    }
    assert rules_broken(SearchQuery, {"limit": str(MAX_SEARCH_LIMIT + 1)}) == {
        ("limit", "less_than_equal")
    }
    assert rules_broken(RunsQuery, {"limit": str(MAX_RUNS_LIMIT + 1)}) == {
        ("limit", "less_than_equal")
    }


def test_names_have_a_length() -> None:
    assert rules_broken(EventsQuery, {"bus": ""}) == {("bus", "string_too_short")}
    assert rules_broken(EventsQuery, {"topic": "t" * 257}) == {("topic", "string_too_long")}
    assert EventsQuery.model_validate({"topic": "t" * 256}).topic == "t" * 256


def test_an_empty_search_bound_means_no_bound() -> None:
    search = SearchQuery.model_validate({"since": "", "until": "", "type": "order"})

    assert (search.since, search.until, search.type) == (None, None, "order")


def test_search_bounds_take_instants() -> None:
    search = SearchQuery.model_validate({"since": "2024-05-01T12:00:00Z", "until": "1714564900"})

    assert (search.since, search.until) == (1714564800.0, 1714564900.0)
    assert ("since", "value_error") in rules_broken(SearchQuery, {"since": "soon"})


def test_runs_and_dead_letters_have_their_own_defaults() -> None:
    assert RunsQuery.model_validate({}) == RunsQuery(function="", limit=200)
    assert DeadLettersQuery.model_validate({}).topic is None
    assert DeadLettersQuery.model_validate({"topic": "dlq"}).topic == "dlq"


@pytest.mark.parametrize("token", ["abc.DEF-123_~!", "x" * 4096])
def test_a_page_token_is_what_a_cookie_can_hold(token: str) -> None:
    assert PageQuery.model_validate({"token": token}).token == token


@pytest.mark.parametrize(
    "token", ["has space", 'quo"te', "semi;colon", "comma,", "back\\slash", "é", "x" * 4097]
)
def test_a_page_token_a_cookie_cannot_hold_is_refused(token: str) -> None:
    assert rules_broken(PageQuery, {"token": token}) <= {
        ("token", "string_pattern_mismatch"),
        ("token", "string_too_long"),
    }


def test_a_redrive_path_takes_an_offset() -> None:
    assert RedrivePath.model_validate({"offset": "17"}).offset == 17
    assert rules_broken(RedrivePath, {"offset": "-1"}) == {("offset", "greater_than_equal")}


# --- the replay body --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"trigger": "billing", "fromOffset": 0},
        {"topic": "orders", "fromTime": "2024-05-01T12:00:00Z", "bus": "kafka"},
        {"trigger": "billing", "fromOffset": 7.0},  # an integer, as JSON Schema counts them
        {"topic": "orders", "fromTime": 1714564800.5},
    ],
)
def test_a_replay_names_one_target_and_one_start(body: dict[str, Any]) -> None:
    replay = Replay.model_validate(body)

    assert (replay.trigger is None) != (replay.topic is None)
    assert (replay.from_offset is None) != (replay.from_time is None)


def test_the_offset_of_a_replay_is_an_exact_integer() -> None:
    assert Replay.model_validate({"trigger": "b", "fromOffset": 7.0}).from_offset == 7
    assert rules_broken(Replay, {"trigger": "b", "fromOffset": 7.5}) == {("fromOffset", "int_type")}
    assert rules_broken(Replay, {"trigger": "b", "fromOffset": "7"}) == {("fromOffset", "int_type")}
    assert rules_broken(Replay, {"trigger": "b", "fromOffset": True}) == {
        ("fromOffset", "int_type")
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"fromOffset": 1}, "give exactly one of 'trigger' and 'topic'"),
        (
            {"trigger": "b", "topic": "t", "fromOffset": 1},
            "give exactly one of 'trigger' and 'topic'",
        ),
        ({"trigger": "b"}, "give exactly one of 'fromOffset' and 'fromTime'"),
        (
            {"trigger": "b", "fromOffset": 1, "fromTime": 0},
            "give exactly one of 'fromOffset' and 'fromTime'",
        ),
        (
            {"trigger": "b", "fromOffset": 1, "topic": None},
            "topic: leave a field out rather than null",
        ),
    ],
)
def test_a_replay_that_does_not_say_what_or_from_where_is_refused(
    body: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Replay.model_validate(body)


def test_a_replay_takes_no_unknown_fields_and_camel_case_names_only() -> None:
    assert rules_broken(Replay, {"trigger": "b", "fromOffset": 1, "extra": 1}) == {
        ("extra", "extra_forbidden")
    }
    assert ("from_offset", "extra_forbidden") in rules_broken(
        Replay, {"trigger": "b", "from_offset": 1}
    )


def test_a_start_before_1970_means_from_the_start() -> None:
    assert Replay.model_validate({"topic": "t", "fromTime": -50}).start_time == 0.0
    assert Replay.model_validate({"topic": "t", "fromTime": 50}).start_time == 50.0
    assert Replay.model_validate({"topic": "t", "fromOffset": 3}).start_time is None
