"""The resource models' own rules: durations, filters, scale, secrets, sources, and aliases.

``parse_duration`` takes text from users' YAML, so besides examples it is checked as
a property: every duration written in any accepted form reads back as the seconds it
names, and any other text is a ``ValueError`` (never another exception).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cumulo.spec.models import (
    Delivery,
    EventSource,
    EventSourceSpec,
    Filter,
    Function,
    FunctionSpec,
    GitSource,
    KafkaSource,
    S3Source,
    Scale,
    SecretRef,
    TriggerBinding,
    WebhookSource,
    parse_duration,
)

ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,20}")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}


def errors_of(call: Any) -> list[str]:
    """The messages of the ValidationError ``call()`` raises."""
    with pytest.raises(ValidationError) as raised:
        call()
    return [error["msg"] for error in raised.value.errors()]


# --- durations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0), ("30s", 30.0), ("250ms", 0.25), ("5m", 300.0), ("1.5h", 5400.0),
        ("2d", 172800.0), (" 10 s ", 10.0), ("PT1M30S", 90.0), ("P1D", 86400.0),
        ("P1DT2H", 93600.0), ("PT0.5S", 0.5), (45, 45.0), (2.5, 2.5),
    ],
)  # fmt: skip
def test_durations_in_every_accepted_form(text: Any, seconds: float) -> None:
    """Seconds, unit suffixes, ISO 8601 and plain numbers all read as seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "P", "soon", "5 minutes", "-5s", "1w", "5m30s", "PT1H1D"])
def test_other_text_is_not_a_duration(text: str) -> None:
    """The message names the accepted forms."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["PT", "P1DT"])
def test_an_iso_duration_with_an_empty_time_part_is_refused(text: str) -> None:
    """ISO 8601 needs a time part after 'T': 'PT' and 'P1DT' are no durations."""
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_non_numbers_are_handed_on_unchanged() -> None:
    """A bool, list or None is not parse_duration's to judge: the model checks its type."""
    for value in (True, [1], None):
        assert parse_duration(value) is value
    assert errors_of(lambda: Scale(idle_timeout=[1])) != []


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_a_duration(value: bool) -> None:
    """`timeout: yes` in YAML is a mistake, not one second."""
    with pytest.raises(ValidationError):
        FunctionSpec(handler="main:f", timeout=value)


@given(amount=st.integers(min_value=0, max_value=10**6), unit=st.sampled_from(sorted(UNITS)))
def test_any_amount_with_any_unit_is_that_many_seconds(amount: int, unit: str) -> None:
    """Every `<n><unit>` (ms, s, m, h, d, none) is n times the unit in seconds."""
    assert parse_duration(f"{amount}{unit}") == pytest.approx(amount * UNITS[unit])


@given(
    days=st.integers(min_value=0, max_value=400),
    hours=st.integers(min_value=0, max_value=48),
    minutes=st.integers(min_value=0, max_value=120),
    seconds=st.integers(min_value=0, max_value=120),
)
def test_any_iso_duration_is_the_sum_of_its_parts(
    days: int, hours: int, minutes: int, seconds: int
) -> None:
    """Every PnDTnHnMnS is the sum of its days, hours, minutes and seconds."""
    text = f"P{days}DT{hours}H{minutes}M{seconds}S"

    assert parse_duration(text) == days * 86400 + hours * 3600 + minutes * 60 + seconds


@given(st.text(max_size=20))
def test_any_text_is_seconds_or_a_value_error(text: str) -> None:
    """Whatever a user writes: a non-negative number of seconds, or a ValueError."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert isinstance(seconds, float) and seconds >= 0


# --- filters ------------------------------------------------------------------------------


def test_a_filter_has_exactly_one_dialect() -> None:
    """Two dialects in one filter, or none, are refused."""
    both = {"exact": {"type": "a"}, "prefix": {"type": "b"}}

    assert "exactly one of" in errors_of(lambda: Filter.model_validate(both))[0]
    assert "exactly one of" in errors_of(lambda: Filter.model_validate({}))[0]


def test_filters_nest_and_not_is_written_as_not() -> None:
    """`all`/`any` nest filters and YAML's `not` key sets the negated filter."""
    nested = Filter.model_validate(
        {"all": [{"exact": {"type": "a"}}, {"not": {"suffix": {"source": "/test"}}}]}
    )

    assert nested.all is not None and nested.all[1].not_ == Filter(suffix={"source": "/test"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"exact": {}}, "needs at least one attribute"),
        ({"exact": {"Type": "a"}}, "'Type' is not a CloudEvents attribute name"),
        ({"prefix": {"type": ""}}, "the value for 'type' must not be empty"),
        ({"any": []}, "needs at least one filter"),
    ],
)
def test_filter_mistakes_say_what_is_wrong(data: dict[str, Any], message: str) -> None:
    """Empty maps, bad attribute names, empty values and empty lists each have their message."""
    assert any(message in text for text in errors_of(lambda: Filter.model_validate(data)))


def test_the_classic_filter_only_has_attributes() -> None:
    """Knative's classic filter has one key, `attributes`; a typo says so."""
    messages = errors_of(lambda: TriggerBinding(filter={"atributes": {"type": "x"}}))

    assert "unknown key 'atributes' (the classic filter has 'attributes')" in messages[0]


@given(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True))
def test_any_cloudevents_attribute_name_is_a_filter_key(name: str) -> None:
    """Every 1-20 character lowercase-alphanumeric name is accepted."""
    assert Filter(exact={name: "v"}).exact == {name: "v"}


@given(
    st.text(min_size=1, max_size=25).filter(lambda s: not ATTRIBUTE_NAME.fullmatch(s))
)
def test_other_keys_are_refused(name: str) -> None:
    """Upper case, punctuation, spaces, more than 20 characters: not an attribute name."""
    with pytest.raises(ValidationError, match="is not a CloudEvents attribute name"):
        Filter(exact={name: "v"})


def test_a_trailing_newline_is_no_attribute_name() -> None:
    """A name with a trailing newline is not a CloudEvents attribute name: refused."""
    with pytest.raises(ValidationError, match="is not a CloudEvents attribute name"):
        Filter(exact={"type\n": "a"})


# --- functions and their parts -----------------------------------------------------------


def test_scale_min_may_not_exceed_max() -> None:
    """min above max is refused with both numbers; equal is fine."""
    assert "min (5) is larger than max (2)" in errors_of(lambda: Scale(min=5, max=2))[0]
    assert Scale(min=2, max=2).min == 2


def test_delivery_defaults_and_duration_fields() -> None:
    """Delivery defaults (3 retries, exponential, dead-letter) and its duration fields."""
    delivery = Delivery.model_validate({"backoffDelay": "500ms", "maxEventAge": "1h"})

    assert (delivery.retries, delivery.backoff_policy) == (3, "exponential")
    assert delivery.backoff_delay == 0.5 and delivery.max_event_age == 3600.0
    assert delivery.dead_letter_topic == "dead-letter"


def test_handlers_are_module_colon_attribute() -> None:
    """A handler is `module:attribute` with dotted parts; other shapes are refused."""
    assert FunctionSpec(handler="pkg.mod:Class.method").handler == "pkg.mod:Class.method"
    for bad in ("main", "main:", ":f", "ma in:f", "1main:f"):
        with pytest.raises(ValidationError):
            FunctionSpec(handler=bad)


def test_camel_case_and_snake_case_both_set_a_field() -> None:
    """YAML's camelCase and Python's snake_case give the same model."""
    camel = Scale.model_validate({"idleTimeout": "2m"})
    snake = Scale.model_validate({"idle_timeout": "2m"})

    assert camel == snake and camel.idle_timeout == 120.0


def test_models_are_frozen() -> None:
    """A loaded spec cannot be changed in place."""
    scale = Scale()
    with pytest.raises(ValidationError):
        scale.max = 9  # type: ignore[misc]


@pytest.mark.parametrize(
    ("ref", "variable"),
    [
        ({"name": "model-token"}, "MODEL_TOKEN"),
        ({"name": "db", "key": "pass.word"}, "DB_PASS_WORD"),
        ({"name": "x", "env": "MY_VAR"}, "MY_VAR"),
        ({"env": "API_KEY"}, "API_KEY"),
    ],
)
def test_a_secret_names_the_variable_holding_it(ref: dict[str, str], variable: str) -> None:
    """The variable is `env`, else NAME[_KEY] upper-cased with other characters as '_'."""
    assert SecretRef.model_validate(ref).variable == variable


def test_a_secret_given_only_its_variable_names_a_kubernetes_secret() -> None:
    """{env: MODEL_TOKEN} names the Secret `model-token`."""
    assert SecretRef(env="MODEL_TOKEN").name == "model-token"  # type: ignore[call-arg]


def test_a_secret_variable_must_be_a_variable_name() -> None:
    """`env` must be a valid environment variable name."""
    with pytest.raises(ValidationError):
        SecretRef(name="x", env="not-a-var")


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True))
def test_any_variable_name_is_its_own_variable(env: str) -> None:
    """For any variable name, the secret reads that variable and names its Secret after it."""
    ref = SecretRef.model_validate({"env": env})

    assert ref.variable == env
    assert ref.name == env.lower().replace("_", "-")


# --- event sources ----------------------------------------------------------------------------


def source(**spec: Any) -> EventSource:
    return EventSource.model_validate({"metadata": {"name": "src"}, "spec": spec})


def test_a_source_is_exactly_one_kind() -> None:
    """An EventSource has exactly one of cron, kafka, s3, git, webhook."""
    assert source(webhook={}).spec.kind == "webhook"
    with pytest.raises(ValidationError, match="exactly one of cron, kafka, s3, git, webhook"):
        source()
    with pytest.raises(ValidationError, match="exactly one of"):
        source(webhook={}, cron={"schedule": "* * * * *"})


def test_s3_keys_go_in_pairs() -> None:
    """accessKey without secretKey (or the reverse) is refused."""
    key = {"env": "K"}
    with pytest.raises(ValidationError, match="accessKey and secretKey go together"):
        S3Source(bucket="b", access_key=key)  # type: ignore[arg-type]
    assert S3Source(bucket="b", access_key=key, secret_key=key).access_key is not None  # type: ignore[arg-type]


def test_polling_git_needs_a_repository_and_takes_no_paths() -> None:
    """provider poll needs a repository and cannot filter by changed paths."""
    with pytest.raises(ValidationError, match="needs a repository"):
        GitSource(provider="poll")
    with pytest.raises(ValidationError, match="webhook providers only"):
        GitSource(provider="poll", repository="https://g/x.git", paths=["src/*"])
    assert GitSource(provider="github", paths=["src/*"]).paths == ["src/*"]


@pytest.mark.parametrize("auth", ["bearer", "hmac", "standard-webhooks"])
def test_webhook_auth_needs_a_secret(auth: str) -> None:
    """Every authenticating webhook scheme needs its secret."""
    with pytest.raises(ValidationError, match=f"auth '{auth}' needs a secret"):
        WebhookSource(auth=auth)  # type: ignore[arg-type]


def test_kafka_group_and_start_defaults() -> None:
    """A Kafka source starts at the latest offset with the default group, no TLS, no SASL."""
    kafka = KafkaSource(brokers=["k:9092"], topics=["t"])

    assert (kafka.group, kafka.start, kafka.tls, kafka.sasl) == (None, "latest", None, None)


def test_positive_limits_are_enforced() -> None:
    """A zero poll interval or dedup window is refused."""
    with pytest.raises(ValidationError):
        S3Source(bucket="b", interval=0)
    with pytest.raises(ValidationError):
        EventSourceSpec(webhook=WebhookSource(), dedup_window=0)


def test_a_resource_name_is_a_dns_label() -> None:
    """Names are DNS-1123 labels: lowercase, digits, '-', at most 63."""
    for bad in ("Train", "-x", "x-", "a" * 64, "under_score"):
        with pytest.raises(ValidationError):
            Function.model_validate({"metadata": {"name": bad}, "spec": {"handler": "m:f"}})
    long = "a" * 63
    assert (
        Function.model_validate({"metadata": {"name": long}, "spec": {"handler": "m:f"}}).name
        == long
    )
