"""Trigger filters compiled once into a plain predicate over an event's attributes.

Semantics follow Knative Eventing (``pkg/eventfilter``):

- **classic** ``filter: {attributes: {name: value}}``: every named attribute
  (extensions included) must equal its value; the value ``""`` matches any
  value, but the attribute must be present and non-empty (Knative's
  ``TriggerAnyFilter``).
- **dialects** (``filters``, Knative's "new trigger filters" / the CloudEvents
  Subscriptions API): ``exact`` (equal), ``prefix`` (starts with), ``suffix``
  (ends with), each over one or more attributes, all of which must match; a
  missing attribute never matches. ``all`` (every nested filter), ``any`` (at
  least one), ``not`` (negation). The top-level list is ANDed; an empty list,
  and no filter at all, accepts every event. Matching is case-sensitive.

One deliberate difference: when a trigger sets both ``filter`` and
``filters``, Knative ignores ``filter``; Cumulo applies both (ANDed), so
nothing a user wrote is silently dropped.

Attribute values are compared as CloudEvents strings: an integer extension
``7`` matches ``"7"``, a boolean ``true`` matches ``"true"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cumulo.events.event import Event
from cumulo.spec.models import Filter, TriggerBinding

Attributes = Mapping[str, Any]
AttributePredicate = Callable[[Attributes], bool]
EventPredicate = Callable[[Event], bool]


def compile_filter(trigger_spec: TriggerBinding) -> EventPredicate:
    """One predicate for a trigger's ``filter`` and ``filters`` (a ``TriggerSpec`` or binding)."""
    parts: list[AttributePredicate] = []
    if trigger_spec.filter is not None:
        parts.extend(_classic(trigger_spec.filter.get("attributes", {})))
    parts.extend(compile_dialect(f) for f in trigger_spec.filters)
    if not parts:
        return accept_all
    match = _all_of(parts)

    def event_matches(event: Event) -> bool:
        return match(event.attributes)

    return event_matches


def accept_all(event: Event) -> bool:
    """The predicate of a trigger without filters."""
    return True


def compile_dialect(expression: Filter) -> AttributePredicate:
    """A predicate over attributes for one dialect expression (nested ones included)."""
    if expression.exact is not None:
        return _all_of([_exact(k, v) for k, v in expression.exact.items()])
    if expression.prefix is not None:
        return _all_of([_prefix(k, v) for k, v in expression.prefix.items()])
    if expression.suffix is not None:
        return _all_of([_suffix(k, v) for k, v in expression.suffix.items()])
    if expression.all is not None:
        return _all_of([compile_dialect(f) for f in expression.all])
    if expression.any is not None:
        return _any_of([compile_dialect(f) for f in expression.any])
    assert expression.not_ is not None  # the model allows exactly one dialect
    return _not(compile_dialect(expression.not_))


def as_text(value: Any) -> str | None:
    """An attribute value as its CloudEvents string (``None`` stays ``None``)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- leaves: one attribute each; the str fast path allocates nothing ------------


def _classic(attributes: Mapping[str, str]) -> list[AttributePredicate]:
    return [_present(k) if v == "" else _exact(k, v) for k, v in attributes.items()]


def _present(name: str) -> AttributePredicate:
    def present(attributes: Attributes) -> bool:
        value = attributes.get(name)
        return value is not None and value != ""

    return present


def _exact(name: str, expected: str) -> AttributePredicate:
    def exact(attributes: Attributes) -> bool:
        value = attributes.get(name)
        if value.__class__ is str:
            return value == expected
        return as_text(value) == expected

    return exact


def _prefix(name: str, prefix: str) -> AttributePredicate:
    def starts_with(attributes: Attributes) -> bool:
        value = attributes.get(name)
        if value.__class__ is not str:
            value = as_text(value)
            if value is None:
                return False
        return value.startswith(prefix)

    return starts_with


def _suffix(name: str, suffix: str) -> AttributePredicate:
    def ends_with(attributes: Attributes) -> bool:
        value = attributes.get(name)
        if value.__class__ is not str:
            value = as_text(value)
            if value is None:
                return False
        return value.endswith(suffix)

    return ends_with


# --- combinators: unrolled for one or two parts, a plain loop beyond -------------
# (``all(p(a) for p in parts)`` allocates a generator per call: about 2x slower)


def _all_of(parts: Sequence[AttributePredicate]) -> AttributePredicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda attributes: first(attributes) and second(attributes)
    frozen = tuple(parts)

    def every(attributes: Attributes) -> bool:
        for part in frozen:  # noqa: SIM110
            if not part(attributes):
                return False
        return True

    return every


def _any_of(parts: Sequence[AttributePredicate]) -> AttributePredicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts
        return lambda attributes: first(attributes) or second(attributes)
    frozen = tuple(parts)

    def some(attributes: Attributes) -> bool:
        for part in frozen:  # noqa: SIM110
            if part(attributes):
                return True
        return False

    return some


def _not(part: AttributePredicate) -> AttributePredicate:
    return lambda attributes: not part(attributes)
