"""Delivery records and the middleware chain: a status per settlement, observers in order."""

from __future__ import annotations

import logging

import pytest

from cumulo.events.bus.base import Ack, DeadLetter, Message, Nack, Settlement
from cumulo.events.event import new_event
from cumulo.events.middleware import Delivery, DeliveryMiddleware, notify
from cumulo.events.outcome import Failure, Outcome, Success

EVENT = new_event("order.placed", "/shop", {"n": 1})
MESSAGE = Message(3, "default", EVENT, 1000.0, 1)


def record(settlement: Settlement | None, outcome: Outcome | None) -> Delivery:
    return Delivery(
        "orders", "fn", MESSAGE, EVENT, started=1000.5, outcome=outcome, settlement=settlement
    )


@pytest.mark.parametrize(
    ("settlement", "outcome", "status"),
    [
        (Ack(3), Success(), "delivered"),
        (Ack(3, emit=[("default", EVENT)]), Success([EVENT]), "delivered"),
        (Ack(3), None, "skipped"),  # a duplicate: acknowledged without running
        (Nack(3, 1.0, "ValueError: x"), Failure("ValueError", "x"), "retried"),
        (DeadLetter(3, "dead-letter", EVENT), Failure("E", "x", permanent=True), "dead-lettered"),
        (DeadLetter(3, "dead-letter", EVENT), None, "dead-lettered"),  # too old to run
    ],
)
def test_status_names_what_became_of_the_message(
    settlement: Settlement, outcome: Outcome | None, status: str
) -> None:
    assert record(settlement, outcome).status == status


def test_a_new_record_has_nothing_but_what_was_taken() -> None:
    fresh = Delivery("orders", "fn", MESSAGE, EVENT, started=1.0)
    assert (fresh.invoked, fresh.duration, fresh.outcome, fresh.settlement, fresh.settled) == (
        None,
        None,
        None,
        None,
        None,
    )


class Recorder:
    def __init__(self, name: str, log: list[tuple[str, Delivery]]) -> None:
        self.name, self.log = name, log

    def after_delivery(self, delivery: Delivery) -> None:
        self.log.append((self.name, delivery))


class Exploding:
    def after_delivery(self, delivery: Delivery) -> None:
        raise KeyError("no such metric")


def test_notify_hands_the_delivery_to_each_middleware_in_order() -> None:
    log: list[tuple[str, Delivery]] = []
    chain: list[DeliveryMiddleware] = [Recorder("metrics", log), Recorder("tracing", log)]
    done = record(Ack(3), Success())
    notify(chain, done)
    assert log == [("metrics", done), ("tracing", done)]


def test_a_middleware_that_raises_is_logged_and_the_rest_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[tuple[str, Delivery]] = []
    chain: list[DeliveryMiddleware] = [Recorder("before", log), Exploding(), Recorder("after", log)]
    with caplog.at_level(logging.ERROR, logger="cumulo.middleware"):
        notify(chain, record(Ack(3), Success()))
    assert [name for name, _ in log] == ["before", "after"]
    [failure] = caplog.records
    assert failure.getMessage() == "middleware Exploding failed on a delivery"
    assert failure.exc_info is not None and failure.exc_info[0] is KeyError
