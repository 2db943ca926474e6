"""Trigger filters: Knative's classic attributes filter and the new dialects."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cumulo.events.event import Event, new_event
from cumulo.events.filters import accept_all, compile_filter
from cumulo.spec.models import TriggerBinding


def trigger(**fields: Any) -> TriggerBinding:
    return TriggerBinding.model_validate(fields)


def matches(binding: TriggerBinding, event: Event) -> bool:
    return compile_filter(binding)(event)


ORDER = new_event(
    "com.shop.order.created",
    "/shop/eu/orders",
    {"id": 1},
    subject="orders/42.json",
    region="eu",
    priority=7,
)
EMPTY_SUBJECT = Event({**ORDER.attributes, "subject": ""})


# --- no filter -----------------------------------------------------------------


def test_no_filter_accepts_everything() -> None:
    assert compile_filter(trigger()) is accept_all
    assert matches(trigger(filters=[]), ORDER)
    assert matches(trigger(filter={"attributes": {}}), ORDER)


# --- classic filter.attributes ------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"type": "com.shop.order.created"}, True),
        ({"type": "com.shop.order.created", "region": "eu"}, True),
        ({"type": "com.shop.order.created", "region": "us"}, False),
        ({"type": "com.shop.order"}, False),
        ({"region": ""}, True),  # "" means: present, any value
        ({"tenant": ""}, False),  # ... but an absent extension never matches
        ({"tenant": "acme"}, False),
        ({"priority": "7"}, True),  # an integer extension compared as its string
    ],
)
def test_classic_attributes_filter(attributes: dict[str, str], expected: bool) -> None:
    assert matches(trigger(filter={"attributes": attributes}), ORDER) is expected


def test_classic_any_value_needs_a_non_empty_attribute() -> None:
    binding = trigger(filter={"attributes": {"subject": ""}})
    assert matches(binding, ORDER)
    assert not matches(binding, EMPTY_SUBJECT)


def test_classic_filter_rejects_unknown_keys_and_bad_names() -> None:
    with pytest.raises(ValidationError, match="unknown key 'atributes'"):
        trigger(filter={"atributes": {"type": "x"}})
    with pytest.raises(ValidationError, match="'Type' is not a CloudEvents attribute name"):
        trigger(filter={"attributes": {"Type": "x"}})


# --- dialects ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"exact": {"type": "com.shop.order.created"}}, True),
        ({"exact": {"type": "com.shop.order.Created"}}, False),  # case-sensitive
        ({"exact": {"type": "com.shop.order.created", "region": "us"}}, False),
        ({"exact": {"tenant": "acme"}}, False),
        ({"exact": {"priority": "7"}}, True),
        ({"prefix": {"type": "com.shop."}}, True),
        ({"prefix": {"type": "com.bank."}}, False),
        ({"prefix": {"tenant": "a"}}, False),
        ({"prefix": {"priority": "7"}}, True),
        ({"suffix": {"subject": ".json"}}, True),
        ({"suffix": {"subject": ".csv"}}, False),
        ({"suffix": {"tenant": "x"}}, False),
        ({"not": {"exact": {"region": "us"}}}, True),
        ({"not": {"prefix": {"type": "com.shop."}}}, False),
        ({"not": {"exact": {"tenant": "acme"}}}, True),  # absent: exact fails, not passes
    ],
)
def test_single_dialects(expression: dict[str, Any], expected: bool) -> None:
    assert matches(trigger(filters=[expression]), ORDER) is expected


def test_nested_all_any_not() -> None:
    expression = {
        "all": [
            {"prefix": {"type": "com.shop."}},
            {
                "any": [
                    {"exact": {"region": "us"}},
                    {"suffix": {"source": "/orders"}},
                    {"exact": {"tenant": "acme"}},
                ]
            },
            {"not": {"any": [{"suffix": {"type": ".deleted"}}, {"exact": {"region": "cn"}}]}},
        ]
    }
    binding = trigger(filters=[expression])
    assert matches(binding, ORDER)
    assert not matches(binding, ORDER.with_attributes(region="cn"))
    assert not matches(binding, ORDER.with_attributes(source="/shop/eu/refunds"))
    assert matches(binding, ORDER.with_attributes(source="/x", region="us"))
    assert matches(binding, ORDER.with_attributes(source="/x", region=None, tenant="acme"))


def test_top_level_filters_are_anded() -> None:
    both = [{"prefix": {"type": "com.shop."}}, {"exact": {"region": "eu"}}]
    assert matches(trigger(filters=both), ORDER)
    assert not matches(trigger(filters=both), ORDER.with_attributes(region="us"))


def test_all_and_any_with_two_and_three_parts() -> None:
    parts = [{"exact": {"region": "eu"}}, {"exact": {"priority": "7"}}, {"prefix": {"source": "/"}}]
    assert matches(trigger(filters=[{"all": parts[:2]}]), ORDER)
    assert matches(trigger(filters=[{"all": parts}]), ORDER)
    miss = [{"exact": {"region": "us"}}, {"exact": {"region": "cn"}}]
    assert not matches(trigger(filters=[{"any": miss}]), ORDER)
    assert not matches(trigger(filters=[{"any": [*miss, {"exact": {"region": "jp"}}]}]), ORDER)
    assert matches(trigger(filters=[{"any": [*miss, {"exact": {"region": "eu"}}]}]), ORDER)


def test_classic_and_dialects_both_apply() -> None:
    binding = trigger(
        filter={"attributes": {"type": "com.shop.order.created"}},
        filters=[{"exact": {"region": "us"}}],
    )
    assert not matches(binding, ORDER)
    assert matches(binding, ORDER.with_attributes(region="us"))


def test_boolean_extension_matches_its_cloudevents_string() -> None:
    event = Event({**ORDER.attributes, "urgent": True})
    assert matches(trigger(filters=[{"exact": {"urgent": "true"}}]), event)
    assert not matches(trigger(filters=[{"exact": {"urgent": "True"}}]), event)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"exact": {}}, "needs at least one attribute"),
        ({"prefix": {"type": ""}}, "the value for 'type' must not be empty"),
        ({"suffix": {"Subject": ".json"}}, "'Subject' is not a CloudEvents attribute name"),
        ({"all": []}, "needs at least one filter"),
        ({"any": []}, "needs at least one filter"),
        ({"exact": {"a": "b"}, "prefix": {"a": "b"}}, "exactly one of exact, prefix"),
        ({}, "exactly one of exact, prefix"),
    ],
)
def test_invalid_dialects_are_refused(expression: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        trigger(filters=[expression])


def test_compiled_filter_is_reusable_and_accepts_trigger_specs() -> None:
    from cumulo.spec.models import TriggerSpec

    spec = TriggerSpec(function="f", filters=[{"prefix": {"type": "com.shop."}}])
    predicate = compile_filter(spec)
    events = [ORDER, ORDER.with_attributes(type="org.other")] * 1000
    assert sum(predicate(e) for e in events) == 1000
