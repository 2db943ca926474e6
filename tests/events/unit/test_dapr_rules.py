"""A trigger's filters and retry policy as Dapr reads them (CEL rule, resiliency policy).

Besides the rule's text, the rules are checked by what they select: a tiny
evaluator for the CEL subset the module writes (``==``, ``startsWith``,
``endsWith``, ``&&``, ``||``, ``!``) runs each rule on a grid of events and
compares it with Cumulo's own filter. The module's promise: a rule is exact
where CEL sees every attribute, and otherwise wider, never narrower.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from cumulo.events.dapr_rules import CEL_ATTRIBUTES, duration, filter_expression, retry_policy
from cumulo.events.event import Event
from cumulo.events.filters import compile_filter
from cumulo.spec.models import Delivery, Filter, TriggerBinding


def filters(*expressions: dict[str, Any]) -> list[Filter]:
    return [Filter.model_validate(expression) for expression in expressions]


def cel_selects(rule: str | None, attributes: dict[str, str]) -> bool:
    """Evaluate the CEL subset the module writes; ``None`` is ``true``."""
    if rule is None:
        return True
    python = re.sub(r"event\.(\w+)", r'event["\1"]', rule)
    python = python.replace(".startsWith(", ".startswith(").replace(".endsWith(", ".endswith(")
    python = python.replace("&&", " and ").replace("||", " or ").replace("!(", " not (")
    return bool(eval(python, {"__builtins__": {}}, {"event": attributes}))


def cumulo_selects(given: list[Filter], attributes: dict[str, str]) -> bool:
    binding = TriggerBinding(filters=given)
    return compile_filter(binding)(Event(dict(attributes)))


GRID = [
    {"specversion": "1.0", "id": "e", "type": t, "source": s, "subject": j, "region": r}
    for t, s, j, r in itertools.product(
        ("order.placed", "order.viewed"), ("/shop/eu", "/crm/us"), ("a.json", "b.csv"), ("eu", "us")
    )
]

VISIBLE = {
    "exact type": [{"exact": {"type": "order.placed"}}],
    "two attributes": [{"exact": {"type": "order.placed", "source": "/shop/eu"}}],
    "prefix and suffix": [{"prefix": {"source": "/shop"}}, {"suffix": {"subject": ".json"}}],
    "any": [{"any": [{"exact": {"type": "order.viewed"}}, {"suffix": {"subject": ".csv"}}]}],
    "not": [{"not": {"prefix": {"type": "order.p"}}}],
    "nested": [
        {
            "all": [
                {"any": [{"exact": {"subject": "a.json"}}, {"prefix": {"source": "/crm"}}]},
                {"not": {"exact": {"type": "order.viewed"}}},
            ]
        }
    ],
}

WIDENED = {
    "an extension": [{"exact": {"region": "eu"}}],
    "mixed in one dialect": [{"exact": {"type": "order.placed", "region": "eu"}}],
    "all with an extension": [
        {"all": [{"exact": {"type": "order.placed"}}, {"exact": {"region": "eu"}}]}
    ],
    "any with an extension": [
        {"any": [{"exact": {"type": "order.placed"}}, {"exact": {"region": "eu"}}]}
    ],
    "not of an extension": [{"not": {"exact": {"region": "eu"}}}],
    "and of visible and not": [{"exact": {"type": "order.placed"}}, {"suffix": {"region": "u"}}],
}


@pytest.mark.parametrize("expressions", VISIBLE.values(), ids=VISIBLE.keys())
def test_a_rule_over_attributes_cel_sees_selects_exactly_what_cumulo_does(
    expressions: list[dict[str, Any]],
) -> None:
    given = filters(*expressions)
    rule = filter_expression(given)
    assert rule is not None
    for event in GRID:
        assert cel_selects(rule, event) == cumulo_selects(given, event), (rule, event)


@pytest.mark.parametrize("expressions", WIDENED.values(), ids=WIDENED.keys())
def test_a_rule_over_extensions_is_wider_never_narrower(expressions: list[dict[str, Any]]) -> None:
    given = filters(*expressions)
    rule = filter_expression(given)
    for event in GRID:
        if cumulo_selects(given, event):
            assert cel_selects(rule, event), (rule, event)


def test_a_negated_all_with_an_extension_is_not_narrowed() -> None:
    given = filters(
        {"not": {"all": [{"exact": {"type": "order.placed"}}, {"exact": {"region": "eu"}}]}}
    )
    rule = filter_expression(given)
    for event in GRID:
        if cumulo_selects(given, event):
            assert cel_selects(rule, event), (rule, event)


def test_no_filters_or_only_invisible_ones_give_no_rule() -> None:
    assert filter_expression([]) is None
    assert filter_expression(filters({"exact": {"region": "eu"}})) is None
    assert filter_expression(filters({"all": [{"prefix": {"tenant": "a"}}]})) is None


def test_the_rule_text_is_what_dapr_is_given() -> None:
    assert filter_expression(filters({"exact": {"type": "a"}})) == 'event.type == "a"'
    assert filter_expression(filters({"prefix": {"source": "/s"}})) == (
        'event.source.startsWith("/s")'
    )
    assert filter_expression(filters({"suffix": {"subject": ".json"}})) == (
        'event.subject.endsWith(".json")'
    )
    assert filter_expression(filters({"exact": {"type": "a", "id": "1"}})) == (
        '(event.id == "1" && event.type == "a")'  # attributes in a stable order
    )
    assert filter_expression(
        filters({"exact": {"type": "a"}}, {"not": {"exact": {"id": "1"}}})
    ) == ('event.type == "a" && !(event.id == "1")')
    assert (
        filter_expression(filters({"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}))
        == '(event.type == "a" || event.type == "b")'
    )


def test_values_are_quoted_as_cel_string_literals() -> None:
    rule = filter_expression(filters({"exact": {"subject": 'say "hi"\\now'}}))
    assert rule == 'event.subject == "say \\"hi\\"\\\\now"'


def test_cel_sees_the_spec_attributes_only() -> None:
    assert {"id", "source", "type", "subject", "time"} <= CEL_ATTRIBUTES
    assert "region" not in CEL_ATTRIBUTES and "dataschema" not in CEL_ATTRIBUTES


# --- retry policy ------------------------------------------------------------------------------


def test_an_exponential_policy_keeps_its_cap_and_retries() -> None:
    policy = Delivery.model_validate(
        {"retries": 5, "backoffPolicy": "exponential", "maxBackoff": "90s"}
    )
    assert retry_policy(policy) == {"policy": "exponential", "maxInterval": "90s", "maxRetries": 5}


def test_a_linear_policy_becomes_a_constant_one_at_the_backoff_delay() -> None:
    policy = Delivery.model_validate(
        {"retries": 2, "backoffPolicy": "linear", "backoffDelay": "250ms"}
    )
    assert retry_policy(policy) == {"policy": "constant", "duration": "250ms", "maxRetries": 2}


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (0, "0s"), (300.0, "300s"), (0.25, "250ms"), (1.5, "1500ms")]
)
def test_durations_are_go_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text
