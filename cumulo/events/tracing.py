"""W3C trace context on CloudEvents (the distributed-tracing extension).

An event's ``traceparent`` names the trace it belongs to and the span that
produced it; ``tracestate`` travels alongside, untouched. The rules:

- An event that enters the platform without one (``POST /events``,
  ``cumulo publish``) starts a new trace: :func:`ensure_trace`.
- While a function handles an event, that event is the *current* one
  (:func:`handling`, set by the worker around each invocation); events made
  meanwhile (``new_event``, so ``lineage_event`` and progress events) join its
  trace with a new span whose parent is the handled event's span.
- Events a function returns get the same treatment where they are settled:
  :func:`reply_of` (the dispatcher's reply path, and job failure notices).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


class Traced(Protocol):
    """What tracing needs of an event (:class:`cumulo.events.event.Event` is one)."""

    @property
    def attributes(self) -> Mapping[str, Any]: ...

    def with_attributes(self: T, **changes: Any) -> T: ...

    def with_trace(self: T, trace: Mapping[str, str]) -> T: ...


T = TypeVar("T", bound=Traced)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SAMPLED = "01"


@dataclass(frozen=True, slots=True)
class SpanContext:
    """A trace id and a span id (lowercase hex), as a ``traceparent`` carries them."""

    trace_id: str
    span_id: str
    flags: str = SAMPLED
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> SpanContext:
        """A new span in the same trace."""
        return SpanContext(self.trace_id, new_span_id(), self.flags, self.tracestate)

    def attributes(self) -> dict[str, str]:
        """The CloudEvent extension attributes for this span."""
        found = {TRACEPARENT: self.traceparent}
        if self.tracestate:
            found[TRACESTATE] = self.tracestate
        return found


def new_trace_id() -> str:
    while (value := secrets.token_hex(16)) == "0" * 32:
        pass
    return value


def new_span_id() -> str:
    while (value := secrets.token_hex(8)) == "0" * 16:
        pass
    return value


def new_trace() -> SpanContext:
    return SpanContext(new_trace_id(), new_span_id())


def parse(traceparent: Any, tracestate: Any = None) -> SpanContext | None:
    """A ``traceparent`` value as a span context; ``None`` when missing or malformed."""
    if not isinstance(traceparent, str):
        return None
    match = _FORMAT.match(traceparent.strip().lower())
    if match is None or set(match[1]) == {"0"} or set(match[2]) == {"0"}:
        return None
    state = tracestate if isinstance(tracestate, str) and tracestate else None
    return SpanContext(match[1], match[2], match[3], state)


def context_of(attributes: Mapping[str, Any]) -> SpanContext | None:
    """The span context an event's attributes carry, if any."""
    return parse(attributes.get(TRACEPARENT), attributes.get(TRACESTATE))


def trace_id_of(event: Traced) -> str | None:
    context = context_of(event.attributes)
    return context.trace_id if context else None


def ensure_trace(event: T) -> T:
    """``event`` if it carries a valid traceparent, else a copy that starts a new trace."""
    if context_of(event.attributes) is not None:
        return event
    return event.with_trace(new_trace().attributes())


def reply_of(cause: Traced, reply: T) -> T:
    """``reply`` in the trace of ``cause``: kept if already in it, else a new child span."""
    parent = context_of(cause.attributes)
    if parent is None:
        return reply
    own = context_of(reply.attributes)
    if own is not None and own.trace_id == parent.trace_id:
        return reply
    # a tracestate belongs to its traceparent: the one of the trace left behind goes
    return reply.with_attributes(**{TRACESTATE: None, **parent.child().attributes()})


# --- the event being handled (set by the worker while a function runs) ----------

_current: ContextVar[SpanContext | None] = ContextVar("cumulo_trace", default=None)


def current() -> SpanContext | None:
    """The span context of the event being handled here, or ``None``."""
    return _current.get()


def child_attributes() -> dict[str, str]:
    """Trace attributes for an event made now: a child of the handled event, or none."""
    parent = _current.get()
    return parent.child().attributes() if parent else {}


@contextmanager
def handling(event: Traced | None) -> Iterator[SpanContext | None]:
    """Make ``event``'s trace the current one within the block."""
    context = context_of(event.attributes) if event is not None else None
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
