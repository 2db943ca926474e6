"""Trace context rules on events: new traces, children while handling, replies."""

from __future__ import annotations

from cumulo.events import tracing
from cumulo.events.event import new_event
from cumulo.runtimes.worker.outcome import invoke_cloudevent

GIVEN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_parse_accepts_w3c_and_refuses_the_rest():
    context = tracing.parse(GIVEN, "a=1")
    assert context is not None and context.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert context.traceparent == GIVEN and context.tracestate == "a=1"
    for bad in (None, "", "00-xyz", "00-" + "0" * 32 + "-b7ad6b7169203331-01", 42):
        assert tracing.parse(bad) is None


def test_an_untraced_event_starts_a_trace_and_a_traced_one_keeps_it():
    plain = new_event("t", "/s")
    assert "traceparent" not in plain.attributes
    started = tracing.ensure_trace(plain)
    assert tracing.parse(started.attributes["traceparent"]) is not None
    assert tracing.ensure_trace(started) is started


def test_events_made_while_handling_join_the_trace_as_children():
    cause = new_event("t", "/s", traceparent=GIVEN, tracestate="a=1")
    with tracing.handling(cause):
        made = new_event("child", "/s")
    child = tracing.context_of(made.attributes)
    assert child is not None and child.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert child.span_id != "b7ad6b7169203331" and made.attributes["tracestate"] == "a=1"
    assert "traceparent" not in new_event("after", "/s").attributes


def test_replies_join_the_trace_of_their_cause():
    cause = new_event("t", "/s", traceparent=GIVEN)
    [reply] = invoke_cloudevent(lambda e: {"type": "r", "data": 1}, cause, name="f").replies
    own = tracing.context_of(reply.attributes)
    assert own is not None and own.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert tracing.reply_of(cause, reply) is reply  # already in the trace
    foreign = tracing.ensure_trace(new_event("r", "/s"))
    moved = tracing.context_of(tracing.reply_of(cause, foreign).attributes)
    assert moved is not None and moved.trace_id == "0af7651916cd43dd8448eb211c80319c"
