"""Source payload parsing as properties: what any sender posts is mapped or refused cleanly.

Webhook-style sources read bodies from the internet. For every body, the S3, Git and
generic webhook receivers either map it to events or raise
:class:`~cumulo.errors.InvalidEventError` (a 400 naming the field), never anything
else. And for well-formed deliveries the mapping keeps what matters: an S3 key is
URL-decoded and survives any SNS/SQS wrapping, a push's changed paths are every
path once, a JSON body is the event's data.
"""

from __future__ import annotations

import copy
import json
import string
from typing import Any
from urllib.parse import quote_plus

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cumulo.errors import InvalidEventError
from cumulo.events.sources.git import GitWebhookSource, parse_push
from cumulo.events.sources.s3 import MAX_NESTING, S3NotificationSource, parse_record
from cumulo.events.sources.webhook import Delivery, Mapped, WebhookSource
from cumulo.spec.models import EventSource
from tests.events.sources.conftest import TESTDATA, Recorder, payload

PROPERTY = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
JSON = {"content-type": "application/json"}
AWS_EVENT = json.loads((TESTDATA / "s3" / "s3-event.json").read_text())

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
# Keys, names and paths as people write them (no control characters: an attribute cannot hold one).
printable = st.characters(blacklist_categories=("Cc", "Cs"))
object_keys = st.text(alphabet=printable, min_size=1, max_size=40)


def source(name: str, spec: dict[str, Any]) -> EventSource:
    return EventSource.model_validate({"metadata": {"name": name}, "spec": spec})


def mapped_or_invalid(receiver: Any, delivery: Delivery) -> Mapped | None:
    """What ``accept`` returns, or ``None`` when it refused with InvalidEventError."""
    try:
        return receiver.accept(delivery)  # type: ignore[no-any-return]
    except InvalidEventError as e:
        assert e.problems and all(isinstance(p, str) and p for p in e.problems)
        return None


@pytest.fixture
def s3(deliveries: Any) -> S3NotificationSource:
    spec = {"s3": {"bucket": "sourcebucket"}}
    return S3NotificationSource(source("uploads", spec), Recorder(), deliveries, None)


@pytest.fixture
def github(deliveries: Any) -> GitWebhookSource:
    return GitWebhookSource(
        source("repo", {"git": {"provider": "github"}}), Recorder(), deliveries, None
    )


@pytest.fixture
def webhook(deliveries: Any) -> WebhookSource:
    return WebhookSource(source("hook", {"webhook": {"path": "/in"}}), Recorder(), deliveries, None)


# --- anything in: events or a clean refusal ---------------------------------------------------


@PROPERTY
@given(body=json_values)
def test_any_json_to_the_s3_receiver_is_mapped_or_refused(
    s3: S3NotificationSource, body: Any
) -> None:
    """Any JSON value posted as a notification maps or raises InvalidEventError only."""
    mapped_or_invalid(s3, Delivery(JSON, orjson.dumps(body)))


@PROPERTY
@given(record=json_values)
def test_any_record_inside_records_is_mapped_or_refused(
    s3: S3NotificationSource, record: Any
) -> None:
    """Garbage where an S3 record belongs: a refusal naming ``Records[0]``, or nothing mapped."""
    try:
        s3.accept(Delivery(JSON, orjson.dumps({"Records": [record]})))
    except InvalidEventError as e:
        assert any("Records[0]" in problem for problem in e.problems)


@PROPERTY
@given(body=st.binary(max_size=200))
def test_any_bytes_to_the_s3_receiver_are_mapped_or_refused(
    s3: S3NotificationSource, body: bytes
) -> None:
    """Any bytes, JSON or not, map or raise InvalidEventError only."""
    mapped_or_invalid(s3, Delivery(JSON, body))


@PROPERTY
@given(body=json_values)
def test_any_json_to_the_git_receiver_is_mapped_or_refused(
    github: GitWebhookSource, body: Any
) -> None:
    """Any JSON value posted as a GitHub push maps or raises InvalidEventError only."""
    mapped_or_invalid(github, Delivery({"x-github-event": "push", **JSON}, orjson.dumps(body)))


@PROPERTY
@given(
    field=st.sampled_from(["ref", "after", "repository", "commits", "pusher", "before"]),
    value=json_values,
)
def test_a_real_push_with_one_field_replaced_is_mapped_or_refused(
    github: GitWebhookSource, field: str, value: Any
) -> None:
    """GitHub's real push body with any value in one field: never an unexpected exception."""
    body = json.loads(payload("github"))
    body[field] = value

    mapped_or_invalid(github, Delivery({"x-github-event": "push", **JSON}, orjson.dumps(body)))


@PROPERTY
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", None]),
)
def test_any_body_to_the_webhook_receiver_keeps_its_content(
    webhook: WebhookSource, body: bytes, content_type: str | None
) -> None:
    """JSON bodies are their JSON value; other bodies keep their bytes; bad JSON is refused."""
    headers = {"content-type": content_type} if content_type else {}

    mapped = mapped_or_invalid(webhook, Delivery(headers, body))

    if mapped is None:
        assert content_type == "application/json"
        return
    [event] = mapped.events
    if not body:
        assert event.data is None
    elif content_type == "application/json":
        assert event.data == json.loads(body)
    else:
        assert event.data == body
        assert event.attributes["datacontenttype"] == (content_type or "application/octet-stream")


# --- S3: keys, names and wrappers ------------------------------------------------------------


def s3_record(
    key: str, *, event: str = "ObjectCreated:Put", etag: str = '"abc"', **more: Any
) -> dict[str, Any]:
    record = copy.deepcopy(AWS_EVENT["Records"][0])
    record["eventName"] = event
    record["s3"]["object"] = {"key": quote_plus(key), "size": 7, "eTag": etag, **more}
    return record


@PROPERTY
@given(key=object_keys, prefix=st.booleans())
def test_a_key_is_url_decoded_and_the_event_names_it(
    s3: S3NotificationSource, key: str, prefix: bool
) -> None:
    """Whatever the key, the event's subject, data.key and data.uri are the decoded key."""
    name = ("s3:" if prefix else "") + "ObjectCreated:Put"
    body = orjson.dumps({"Records": [s3_record(key, event=name, sequencer="0A1B")]})

    [event] = s3.accept(Delivery(JSON, body)).events

    assert event.subject == key
    assert event.data["key"] == key
    assert event.data["uri"] == f"s3://sourcebucket/{key}"
    assert event.data["eventName"] == "ObjectCreated:Put"
    assert event.data["etag"] == "abc"
    assert event.id == f"sourcebucket/{key}@0A1B"


@PROPERTY
@given(key=object_keys)
def test_parse_record_inverts_the_url_encoding(key: str) -> None:
    """S3 sends keys URL-encoded with '+' for spaces; parse_record gives the key back."""
    assert parse_record(s3_record(key)).key == key


def wrap(body: dict[str, Any], how: str) -> dict[str, Any]:
    text = json.dumps(body)
    if how == "sns":
        return {"Type": "Notification", "Message": text}
    if how == "sqs":
        return {"Body": text}
    if how == "lambda-sqs":
        return {"Records": [{"eventSource": "aws:sqs", "body": text}]}
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": text}}]}


wrappers = st.lists(
    st.sampled_from(["sns", "sqs", "lambda-sqs", "lambda-sns"]), max_size=MAX_NESTING
)


@PROPERTY
@given(keys=st.lists(object_keys, min_size=1, max_size=3, unique=True), layers=wrappers)
def test_wrapping_in_sns_and_sqs_changes_nothing(
    s3: S3NotificationSource, keys: list[str], layers: list[str]
) -> None:
    """Any nesting of SNS and SQS wrappers (up to the limit) gives the same events."""
    direct: dict[str, Any] = {"Records": [s3_record(k) for k in keys]}
    wrapped = direct
    for how in layers:
        wrapped = wrap(wrapped, how)

    plain = s3.accept(Delivery(JSON, orjson.dumps(direct)))
    through = s3.accept(Delivery(JSON, orjson.dumps(wrapped)))

    assert [e.id for e in through.events] == [e.id for e in plain.events]
    assert through.keys == plain.keys


def test_wrappers_nested_past_the_limit_are_refused(s3: S3NotificationSource) -> None:
    """More wrappers than MAX_NESTING is a malformed delivery, refused before recursing on."""
    body: dict[str, Any] = {"Records": [s3_record("a.csv")]}
    for _ in range(MAX_NESTING + 1):
        body = wrap(body, "sqs")

    with pytest.raises(InvalidEventError, match=f"deeper than {MAX_NESTING}"):
        s3.accept(Delivery(JSON, orjson.dumps(body)))


@PROPERTY
@given(
    event=st.sampled_from(
        ["ObjectRemoved:Delete", "ObjectRestore:Completed", "s3:Replication:OperationFailed"]
    )
)
def test_records_that_create_nothing_publish_nothing(s3: S3NotificationSource, event: str) -> None:
    """Removals, restores and other records are answered with a note and publish nothing."""
    mapped = s3.accept(Delivery(JSON, orjson.dumps({"Records": [s3_record("k", event=event)]})))

    assert mapped.events == []
    assert "is not ObjectCreated" in mapped.note


# --- Git: changed paths and branches -----------------------------------------------------------

paths = st.text(alphabet=string.ascii_lowercase + "/._", min_size=1, max_size=12)
commits = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "added": st.lists(paths, max_size=3),
            "modified": st.lists(paths, max_size=3),
            "removed": st.lists(paths, max_size=3),
        },
    ),
    max_size=4,
)
branches = st.text(
    alphabet=string.ascii_lowercase + string.digits + "/-_.", min_size=1, max_size=20
)


def push_body(branch: str, commit_list: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.loads(payload("github"))
    body.update(ref=f"refs/heads/{branch}", commits=commit_list, after="a" * 40)
    return body


@PROPERTY
@given(commit_list=commits, branch=branches)
def test_changed_paths_are_every_path_once_in_order(
    commit_list: list[dict[str, Any]], branch: str
) -> None:
    """The union of added, modified and removed files across commits, first seen first."""
    push = parse_push("github", push_body(branch, commit_list))

    every = [
        p for c in commit_list for kind in ("added", "modified", "removed") for p in c.get(kind, [])
    ]
    assert push.changed_paths == list(dict.fromkeys(every))
    assert push.branch == branch


@PROPERTY
@given(commit_list=commits, branch=branches)
def test_a_push_event_carries_branch_commit_and_paths(
    github: GitWebhookSource, commit_list: list[dict[str, Any]], branch: str
) -> None:
    """A branch push becomes one event: subject and data name the branch, id the delivery."""
    body = orjson.dumps(push_body(branch, commit_list))
    headers = {"x-github-event": "push", "x-github-delivery": "d-1", **JSON}

    [event] = github.accept(Delivery(headers, body)).events

    assert event.subject == branch
    assert event.data["branch"] == branch
    assert event.data["commit"] == "a" * 40
    assert event.id == "d-1"
    assert event.attributes["cumulosource"] == "repo"


@PROPERTY
@given(ref=st.text(max_size=30))
def test_refs_that_are_not_branches_publish_nothing(github: GitWebhookSource, ref: str) -> None:
    """Tags and anything else outside refs/heads/ are answered with a note."""
    assume(not ref.startswith("refs/heads/"))
    body = json.loads(payload("github"))
    body["ref"] = ref

    mapped = github.accept(Delivery({"x-github-event": "push", **JSON}, orjson.dumps(body)))

    assert mapped.events == [] and "is not a branch" in mapped.note
