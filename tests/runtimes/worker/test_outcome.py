"""What a cloudevent function does, as an outcome."""

from __future__ import annotations

import pytest
from cloudevents.abstract import CloudEvent as SDKCloudEvent

from cumulo.errors import PermanentError, Retry
from cumulo.events.event import Event, new_event
from cumulo.events.outcome import Failure, RetryLater, Success
from cumulo.runtimes.worker import invoke_cloudevent

EVENT = new_event("t", "/s", {"x": 1}, id="e-1")


def raising(error: Exception):
    def fn(event: Event) -> None:
        raise error

    return fn


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (Retry("later", delay=3), RetryLater("Retry", "later", 3)),
        (Retry(), RetryLater("Retry", "retry requested", None)),
        (PermanentError("never"), Failure("PermanentError", "never", permanent=True)),
        (KeyError("k"), Failure("KeyError", "'k'", permanent=False)),
    ],
)
def test_exceptions(error: Exception, outcome) -> None:
    assert invoke_cloudevent(raising(error), EVENT, name="f") == outcome


def test_unexpected_errors_are_logged_with_traceback(caplog) -> None:
    invoke_cloudevent(raising(ZeroDivisionError("zero")), EVENT, name="f")
    [record] = [r for r in caplog.records if r.exc_info]
    assert "function 'f' on event 'e-1'" in record.getMessage()


def test_native_functions_get_the_event_others_the_sdk_event() -> None:
    seen = []

    def native(event: Event) -> None:
        seen.append(event)

    def framework_style(cloud_event) -> None:
        seen.append(cloud_event)

    assert invoke_cloudevent(native, EVENT, name="f") == Success([])
    assert invoke_cloudevent(framework_style, EVENT, name="f") == Success([])
    assert seen[0] is EVENT
    assert isinstance(seen[1], SDKCloudEvent) and seen[1]["id"] == "e-1"


def test_async_functions_run_to_completion() -> None:
    async def reply(event: Event) -> dict:
        return {"type": "r"}

    [event] = invoke_cloudevent(reply, EVENT, name="f").replies
    assert event.type == "r" and event.attributes["cumulocause"] == "e-1"
