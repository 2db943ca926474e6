"""A trigger's delivery policy: when to retry, how long to wait, when to give up.

Attempts are counted from 1: attempt 1 is the first delivery, and
``Delivery.retries`` counts the attempts *after* it (Knative's ``retry``), so
an event is tried at most ``retries + 1`` times.

Backoff (Knative's ``backoffPolicy`` / ``backoffDelay``): the wait after
failed attempt ``n`` (before attempt ``n + 1``) is

- ``linear``: ``backoff_delay * n``
- ``exponential``: ``backoff_delay * 2 ** (n - 1)``

capped at ``max_backoff``. Knative documents ``backoffDelay * 2^<numberOfRetries>``;
its dispatcher passes go-retryablehttp's zero-based retry index, so its first
retry waits ``backoffDelay * 2^0``, which is the figure above. For ``linear``
the same zero-based index makes Knative's first retry immediate
(``backoffDelay * 0``); Cumulo waits one ``backoff_delay``, as Knative's docs
(``backoffDelay * <numberOfRetries>``) describe.

Dead letters carry why they died as CloudEvents extensions. Knative's
dead-letter sink gets ``knativeerrordest`` (the URL that failed),
``knativeerrorcode`` (its HTTP status) and ``knativeerrordata`` (the response
body, base64, up to 1024 bytes). Cumulo's, which also cover failures that are
not HTTP (an exception, a timeout, a ``DROP``):

=====================  ==========================  ===================================
extension              Knative counterpart         value
=====================  ==========================  ===================================
``cumulodest``         ``knativeerrordest``        the last destination tried
``cumuloerrortype``    ``knativeerrorcode``        e.g. ``ValueError``, ``timeout``,
                                                   ``http-503``, ``PermanentError``
``cumuloerror``        ``knativeerrordata``        the error message as text, at most
                                                   1024 characters
``cumuloattempts``     (none)                      how many attempts were made
``cumulotrigger``      (none)                      the trigger that gave up
=====================  ==========================  ===================================
"""

from __future__ import annotations

from datetime import datetime

from cumulo.events.attributes import printable
from cumulo.events.event import Event
from cumulo.spec.models import Delivery

MAX_ERROR_CHARS = 1024
ERROR_TYPE = "cumuloerrortype"
ERROR_MESSAGE = "cumuloerror"
ATTEMPTS = "cumuloattempts"
DESTINATION = "cumulodest"
TRIGGER = "cumulotrigger"
_MAX_DOUBLINGS = 1000  # 2.0 ** 1024 overflows; the cap is long reached by then


def backoff_delay(policy: Delivery, attempt: int) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
    if attempt < 1:
        raise ValueError(f"attempts count from 1, got {attempt}")
    if policy.backoff_policy == "linear":
        delay = policy.backoff_delay * attempt
    else:
        delay = policy.backoff_delay * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS)
    return min(delay, policy.max_backoff)


def should_retry(policy: Delivery, attempt: int) -> bool:
    """Whether failed attempt ``attempt`` (1-based) leaves a retry to make."""
    return attempt <= policy.retries


def is_expired(policy: Delivery, published_at: float | datetime, now: float | datetime) -> bool:
    """Whether an event published at ``published_at`` is older than ``max_event_age``.

    Times are epoch seconds or timezone-aware datetimes. Without a
    ``max_event_age`` an event never expires.
    """
    if policy.max_event_age is None:
        return False
    return _seconds(now) - _seconds(published_at) > policy.max_event_age


def _seconds(moment: float | datetime) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def dead_letter(
    event: Event,
    *,
    error_type: str,
    message: str,
    attempts: int,
    destination: str,
    trigger: str,
) -> Event:
    """A copy of ``event`` that says why it is dead-lettered (see the module docs)."""
    return event.with_attributes(
        **{
            ERROR_TYPE: printable(error_type),
            ERROR_MESSAGE: printable(message[:MAX_ERROR_CHARS]),
            ATTEMPTS: str(attempts),
            DESTINATION: destination,
            TRIGGER: trigger,
        }
    )
