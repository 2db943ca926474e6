"""Trace context details beyond tests/events/test_tracing.py: spans, ids, parsing, the current event."""

from __future__ import annotations

import secrets

import pytest

from cumulo.events import tracing
from cumulo.events.event import Event, new_event
from cumulo.events.tracing import SpanContext

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
GIVEN = f"00-{TRACE}-{SPAN}-01"
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"


def test_a_span_context_writes_its_traceparent() -> None:
    assert SpanContext(TRACE, SPAN, "00").traceparent == f"00-{TRACE}-{SPAN}-00"


def test_a_child_span_keeps_the_trace_flags_and_state() -> None:
    parent = SpanContext(TRACE, SPAN, "00", "vendor=1")
    child = parent.child()
    assert (child.trace_id, child.flags, child.tracestate) == (TRACE, "00", "vendor=1")
    assert child.span_id != SPAN and len(child.span_id) == 16


def test_attributes_carry_tracestate_only_when_there_is_one() -> None:
    assert SpanContext(TRACE, SPAN).attributes() == {"traceparent": f"00-{TRACE}-{SPAN}-01"}
    assert SpanContext(TRACE, SPAN, tracestate="a=1").attributes() == {
        "traceparent": f"00-{TRACE}-{SPAN}-01",
        "tracestate": "a=1",
    }


def test_new_ids_are_lowercase_hex_of_the_right_length() -> None:
    context = tracing.new_trace()
    assert len(context.trace_id) == 32 and len(context.span_id) == 16
    assert tracing.parse(context.traceparent) == context


def test_an_all_zero_id_is_never_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The W3C spec makes all-zero ids invalid: drawing one means drawing again."""
    draws = iter(["0" * 32, "ab" * 16, "0" * 16, "cd" * 8])
    monkeypatch.setattr(secrets, "token_hex", lambda size: next(draws))
    assert tracing.new_trace_id() == "ab" * 16
    assert tracing.new_span_id() == "cd" * 8


def test_parse_normalizes_case_and_whitespace() -> None:
    context = tracing.parse(f"  00-{TRACE.upper()}-{SPAN.upper()}-01 ")
    assert context is not None and (context.trace_id, context.span_id) == (TRACE, SPAN)


@pytest.mark.parametrize(
    "value",
    [
        f"01-{TRACE}-{SPAN}-01",  # a version this parser does not read
        f"00-{TRACE}-{'0' * 16}-01",  # an all-zero span
        f"00-{TRACE[:-1]}-{SPAN}-01",  # a short trace id
        f"00-{TRACE}-{SPAN}-1",  # one flag digit
        f"00-{TRACE}-{SPAN}-01-extra",
    ],
)
def test_parse_refuses_malformed_values(value: str) -> None:
    assert tracing.parse(value) is None


@pytest.mark.parametrize(("state", "kept"), [("a=1", "a=1"), ("", None), (7, None), (None, None)])
def test_parse_keeps_a_non_empty_string_tracestate_only(state: object, kept: str | None) -> None:
    context = tracing.parse(GIVEN, state)
    assert context is not None and context.tracestate == kept


def test_trace_id_of_an_untraced_event_is_none() -> None:
    assert tracing.trace_id_of(new_event("t", "/s")) is None
    assert tracing.trace_id_of(new_event("t", "/s", traceparent=GIVEN)) == TRACE


def test_ensure_trace_replaces_a_malformed_traceparent() -> None:
    broken = new_event("t", "/s", traceparent="not-a-trace")
    fixed = tracing.ensure_trace(broken)
    assert tracing.context_of(fixed.attributes) is not None
    assert broken.attributes["traceparent"] == "not-a-trace"  # the original is untouched


def test_a_reply_from_another_trace_becomes_a_child_of_the_cause() -> None:
    cause = new_event("t", "/s", traceparent=GIVEN, tracestate="cause=1")
    reply = new_event("r", "/fn", traceparent=OTHER, tracestate="other=1")
    moved = tracing.reply_of(cause, reply)
    context = tracing.context_of(moved.attributes)
    assert context is not None and context.trace_id == TRACE and context.span_id != SPAN
    assert moved.attributes["tracestate"] == "cause=1"


def test_a_reply_moved_into_a_cause_without_tracestate_drops_its_old_one() -> None:
    cause = new_event("t", "/s", traceparent=GIVEN)
    reply = new_event("r", "/fn", traceparent=OTHER, tracestate="other=1")
    moved = tracing.reply_of(cause, reply)
    assert tracing.trace_id_of(moved) == TRACE
    assert "tracestate" not in moved.attributes


def test_outside_handling_there_is_no_current_event() -> None:
    assert tracing.current() is None
    assert tracing.child_attributes() == {}


def test_handling_nests_and_restores_the_outer_event() -> None:
    outer = new_event("t", "/s", traceparent=GIVEN)
    inner = new_event("t", "/s", traceparent=OTHER)
    with tracing.handling(outer) as outer_context:
        assert outer_context is not None and outer_context.trace_id == TRACE
        with tracing.handling(inner):
            assert tracing.current().trace_id == "1" * 32  # type: ignore[union-attr]
        with tracing.handling(None) as nothing:
            assert nothing is None and tracing.child_attributes() == {}
        assert tracing.current() == outer_context
    assert tracing.current() is None


def test_handling_an_untraced_event_makes_no_current_trace() -> None:
    with tracing.handling(Event({"id": "1", "source": "/s", "type": "t", "specversion": "1.0"})):
        assert tracing.current() is None


def test_handling_restores_the_outer_event_after_an_error() -> None:
    outer = new_event("t", "/s", traceparent=GIVEN)
    with tracing.handling(outer):
        with pytest.raises(RuntimeError), tracing.handling(new_event("t", "/s", traceparent=OTHER)):
            raise RuntimeError("the function failed")
        assert tracing.trace_id_of(new_event("child", "/fn")) == TRACE
