"""Delivery policy: backoff figures, retry budget, event age, dead-letter extensions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cumulo.events.delivery import (
    backoff_delay,
    dead_letter,
    is_expired,
    should_retry,
)
from cumulo.events.event import new_event, validate_attributes
from cumulo.spec.models import Delivery


@pytest.mark.parametrize(
    ("attempt", "seconds"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0)]
)
def test_exponential_backoff_doubles_from_the_delay_and_is_capped(
    attempt: int, seconds: float
) -> None:
    policy = Delivery(backoff_policy="exponential", backoff_delay="500ms", max_backoff="10s")
    assert backoff_delay(policy, attempt) == seconds


@pytest.mark.parametrize(("attempt", "seconds"), [(1, 2.0), (2, 4.0), (3, 6.0), (4, 7.0)])
def test_linear_backoff_grows_by_the_delay_and_is_capped(attempt: int, seconds: float) -> None:
    policy = Delivery(backoff_policy="linear", backoff_delay="PT2S", max_backoff=7)
    assert backoff_delay(policy, attempt) == seconds


def test_defaults_are_exponential_from_one_second() -> None:
    assert [backoff_delay(Delivery(), n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert backoff_delay(Delivery(max_backoff=60), 5000) == 60.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="count from 1"):
        backoff_delay(Delivery(), 0)


def test_retries_count_after_the_first_attempt() -> None:
    policy = Delivery(retries=2)
    assert [should_retry(policy, n) for n in (1, 2, 3)] == [True, True, False]
    assert not should_retry(Delivery(retries=0), 1)


def test_event_age() -> None:
    published = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    policy = Delivery(max_event_age="1h")
    assert not is_expired(policy, published, published + timedelta(minutes=59))
    assert not is_expired(policy, published, published + timedelta(hours=1))
    assert is_expired(policy, published, published + timedelta(hours=1, seconds=1))
    assert is_expired(policy, 1000.0, 4601.0)
    assert not is_expired(Delivery(), 0.0, 1e12)  # no max_event_age: never expires


def test_dead_letter_says_why() -> None:
    event = new_event("com.shop.order.created", "/shop", {"id": 1}, region="eu")
    dead = dead_letter(
        event,
        error_type="ValueError",
        message="x" * 5000,
        attempts=4,
        destination="function/train",
        trigger="train-0",
    )
    assert dead.attributes["cumuloerrortype"] == "ValueError"
    assert dead.attributes["cumuloerror"] == "x" * 1024
    assert dead.attributes["cumuloattempts"] == "4"
    assert dead.attributes["cumulodest"] == "function/train"
    assert dead.attributes["cumulotrigger"] == "train-0"
    assert dead.attributes["region"] == "eu" and dead.id == event.id and dead.data == event.data
    assert "cumuloerror" not in event.attributes  # the original is unchanged
    assert validate_attributes(dead.attributes) == []
