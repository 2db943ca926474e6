"""The CloudEvents 1.0 and 0.3 rules for context attributes, and the edge's size limits.

:func:`validate_attributes` checks what the spec requires of every event
Cumulo takes in or publishes, and returns every problem it finds:

- ``id``, ``source`` and ``type`` are non-empty strings; ``source`` is a
  URI-reference; ``specversion`` is ``1.0`` or ``0.3``;
- ``datacontenttype`` is a media type (RFC 2045/9110: ``type/subtype`` and
  ``; name=value`` parameters), so it can always travel as a Content-Type
  header; ``time`` is an RFC 3339 timestamp (its offset may be left out, as the
  CloudEvents SDK and functions-framework allow: the value is kept as sent);
- in 1.0, ``dataschema`` is an absolute URI; in 0.3, ``schemaurl`` is a
  URI-reference and ``datacontentencoding`` an RFC 2045 encoding name (a token
  such as ``base64``). Each version's names are plain extensions in the other;
- extension names are 1-20 lowercase letters or digits; every value is a
  string, a boolean or an integer in the spec's signed 32-bit range;
- every string is the spec's String: no control characters (U+0000-U+001F,
  U+007F-U+009F), no noncharacters, no lone surrogates.

An :class:`EdgeRules` adds the sizes the gateway accepts: attributes per
event, bytes per attribute, events per batch, nesting depth of JSON data.
Limits apply at the edge only: what the platform adds later (trace context,
dead-letter reasons) is never refused for size.

The rules are precompiled regular expressions run once per value, so checking
an attribute costs a few C-level scans, never a Python loop over characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

SPEC_VERSION = "1.0"
"""The version of the events Cumulo makes."""
SPEC_VERSIONS = ("1.0", "0.3")
"""The versions Cumulo reads, and keeps as they came."""
REQUIRED = ("id", "source", "specversion", "type")
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_UNBOUNDED = 1 << 62

_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
_NONCHARACTERS = r"\ufdd0-\ufdef" + "".join(
    rf"\U{plane:04x}fffe\U{plane:04x}ffff" for plane in range(17)
)
_NOT_STRING = re.compile(rf"[\x00-\x1f\x7f-\x9f\ud800-\udfff{_NONCHARACTERS}]")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
_MEDIA_TYPE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*(?:{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))?)*[ \t]*"
)
_ENCODING = re.compile(_TOKEN)
_URI_CHARS = r"(?:[^\s\"<>\\^`{|}%]|%[0-9A-Fa-f]{2})*"
_URI_SAFE = "/:?#[]@!$&'()*+,;=~"
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*:"
# A relative reference's first segment cannot hold a ':' (RFC 3986, 4.2).
_URI_REFERENCE = re.compile(rf"(?:{_SCHEME}|(?![^/?#]*:)){_URI_CHARS}")
_URI = re.compile(rf"{_SCHEME}{_URI_CHARS}")
_RFC3339 = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
    r"[Tt]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)?"  # no offset: as the SDK and functions-framework take it
)


@dataclass(frozen=True, slots=True)
class EdgeRules:
    """What the edge demands of an event beyond the spec's rules; ``None`` means no limit.

    The platform builds its rules from its settings (:mod:`cumulo.config`),
    where each limit has its default and the reason for it.
    """

    max_attributes: int | None = None
    max_attribute_bytes: int | None = None
    max_batch_events: int | None = None
    max_data_depth: int | None = None


SPEC_ONLY = EdgeRules()
"""The spec's rules and no size limits: what buses, workers and replies check."""


def validate_attributes(attributes: Mapping[str, Any], rules: EdgeRules = SPEC_ONLY) -> list[str]:
    """Every problem with a set of context attributes (empty when valid)."""
    problems = [
        f"missing required attribute '{name}'" for name in REQUIRED if name not in attributes
    ]
    most = rules.max_attributes
    if most is not None and len(attributes) > most:
        problems.append(
            f"{len(attributes)} attributes are over the max_event_attributes limit of {most}"
        )
    longest = rules.max_attribute_bytes or _UNBOUNDED
    typed = rules_of(attributes)
    for name, value in attributes.items():
        # The common case first, without a call: a printable ASCII string of a valid size.
        plain = value.__class__ is str and value.isascii() and value.isprintable()
        if plain and len(value) <= longest:
            rule = typed.get(name)
            if rule is None and _EXTENSION_NAME.fullmatch(name):
                continue
            if rule is not None and rule(name, value) is None:
                continue
        problem = _name_problem(name) or _value_problem(name, value, rules, typed)
        if problem:
            problems.append(problem)
    return problems


def _name_problem(name: Any) -> str | None:
    if isinstance(name, str) and _EXTENSION_NAME.fullmatch(name):
        return None
    if isinstance(name, str) and len(name) <= 40 and not _NOT_STRING.search(name):
        return f"attribute name '{name}' must be 1-20 lowercase letters or digits"
    return "attribute names must be 1-20 lowercase letters or digits"


def _value_problem(name: str, value: Any, rules: EdgeRules, typed: _Rules) -> str | None:
    rule = typed.get(name)
    if rule is not None:
        if not isinstance(value, str):
            return f"attribute '{name}' must be a string, not {_kind(value)}"
        return _string_problem(name, value, rules) or rule(name, value)
    if isinstance(value, str):
        return _string_problem(name, value, rules)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if INT_MIN <= value <= INT_MAX:
            return None
        return f"attribute '{name}' is an integer outside the signed 32-bit range"
    return f"attribute '{name}' must be a string, integer or boolean, not {_kind(value)}"


def _string_problem(name: str, value: str, rules: EdgeRules) -> str | None:
    most = rules.max_attribute_bytes
    if most is not None and len(value) * 4 > most and len(value.encode("utf-8", "replace")) > most:
        return f"attribute '{name}' is over the max_attribute_bytes limit of {most}"
    if not _is_spec_string(value):
        return f"attribute '{name}' holds a control character, a noncharacter or a lone surrogate"
    return None


def _is_spec_string(value: str) -> bool:
    """Whether ``value`` is the spec's String (ASCII, nearly always: one C-level scan)."""
    if value.isascii():
        return value.isprintable()  # for ASCII: no C0 control character and no DEL
    return _NOT_STRING.search(value) is None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# --- the spec's typed attributes -------------------------------------------------


def _non_empty(name: str, value: str) -> str | None:
    return None if value else f"attribute '{name}' must be a non-empty string"


def _any_string(name: str, value: str) -> str | None:
    return None


def _spec_version(name: str, value: str) -> str | None:
    if value in SPEC_VERSIONS:
        return None
    return f"unsupported specversion '{value[:20]}' (only '1.0' or '0.3')"


def _uri_reference(name: str, value: str) -> str | None:
    if value and _URI_REFERENCE.fullmatch(value):
        return None
    return f"attribute '{name}' must be a non-empty URI-reference (RFC 3986)"


def _uri(name: str, value: str) -> str | None:
    if _URI.fullmatch(value):
        return None
    return f"attribute '{name}' must be an absolute URI (RFC 3986)"


def _media_type(name: str, value: str) -> str | None:
    if _MEDIA_TYPE.fullmatch(value):
        return None
    return f"attribute '{name}' must be a media type such as 'application/json' (RFC 2045)"


def _content_encoding(name: str, value: str) -> str | None:
    if _ENCODING.fullmatch(value):
        return None
    return f"attribute '{name}' must be an RFC 2045 encoding name such as 'base64'"


def _timestamp(name: str, value: str) -> str | None:
    match = _RFC3339.fullmatch(value)
    if match and (match[3] <= "28" or _is_a_date(match[1], match[2], match[3])):
        return None
    return f"attribute '{name}' must be an RFC 3339 timestamp"


def _is_a_date(year: str, month: str, day: str) -> bool:
    try:
        date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


_Rules = Mapping[str, Callable[[str, str], str | None]]
_COMMON: dict[str, Callable[[str, str], str | None]] = {
    "id": _non_empty,
    "type": _non_empty,
    "subject": _any_string,
    "specversion": _spec_version,
    "source": _uri_reference,
    "datacontenttype": _media_type,
    "time": _timestamp,
}
_V1_RULES: _Rules = {**_COMMON, "dataschema": _uri}
_V03_RULES: _Rules = {
    **_COMMON,
    "schemaurl": _uri_reference,
    "datacontentencoding": _content_encoding,
}


def rules_of(attributes: Mapping[str, Any]) -> _Rules:
    """The typed attributes of the event's spec version (1.0's for any other value)."""
    return _V03_RULES if attributes.get("specversion") == "0.3" else _V1_RULES


# --- JSON data -----------------------------------------------------------------------


def nesting_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests objects and arrays more than ``limit`` deep."""
    if not isinstance(value, (dict, list)):
        return False
    return _deeper_than(value, limit)


def _deeper_than(container: dict[str, Any] | list[Any], levels: int) -> bool:
    """Whether ``container`` is more than ``levels`` deep (recursion stops at ``levels``)."""
    if levels <= 0:
        return True
    children = container.values() if isinstance(container, dict) else container
    for child in children:
        if isinstance(child, (dict, list)) and _deeper_than(child, levels - 1):
            return True
    return False


# --- repair (for events already accepted) --------------------------------------------


def printable(text: str) -> str:
    """``text`` as the spec's String: each character it excludes becomes a space."""
    return _NOT_STRING.sub(" ", text)


def repaired(attributes: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Attributes that pass :func:`validate_attributes`, and the names it had to change.

    For an event that is already on the bus but breaks a rule (stored before the
    rule existed) and must still be dead-lettered: a string loses what the spec's
    String excludes (each such character becomes a space), another bad value
    becomes its text (percent-encoded where a URI needs it), and an attribute
    that is still invalid, or a bad name, is dropped.
    """
    fixed: dict[str, Any] = {}
    changed: list[str] = []
    typed = rules_of(attributes)
    for name, value in attributes.items():
        if _name_problem(name) is None and _value_problem(name, value, SPEC_ONLY, typed) is None:
            fixed[name] = value
            continue
        changed.append(str(name))
        if _name_problem(name) is None:
            text = printable(value if isinstance(value, str) else str(value))
            for candidate in (text, quote(text, safe=_URI_SAFE)):
                if _value_problem(name, candidate, SPEC_ONLY, typed) is None:
                    fixed[name] = candidate
                    break
    return fixed, changed
