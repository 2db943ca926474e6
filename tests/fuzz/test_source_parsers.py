"""Property tests: no payload makes a source's parser fail with anything but its own refusal.

For every source that maps outside payloads (git pushes of GitHub, GitLab and
Gitea; S3 notifications direct, from MinIO, wrapped by SNS or SQS; the generic
webhook, CloudEvents included; Kafka records), arbitrary JSON, arbitrary bytes,
and the real payloads with fields replaced by values of any type either map to
events that can be stored, or are refused with :class:`InvalidEventError` (a
400 problem over HTTP). Any other exception, which would be a 500, fails.

Bounded: a fixed number of examples per property, derandomized (the same
examples every run), no deadline, no example database.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cumulo.errors import InvalidEventError, WebhookRejectedError
from cumulo.events.attributes import EdgeRules, validate_attributes
from cumulo.events.event import Event, new_event, to_json
from cumulo.events.sources.git import GitWebhookSource
from cumulo.events.sources.kafka import KafkaEventSource, event_for
from cumulo.events.sources.s3 import S3NotificationSource
from cumulo.events.sources.signatures import verifier
from cumulo.events.sources.webhook import Delivery, HttpSource, WebhookSource
from cumulo.runtimes.local.sources import SqliteDeliveries
from cumulo.spec.models import EventSource
from tests.fuzz.budget import fuzz

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
PUSHES = {
    "github": ("push.json", {"x-github-event": "push"}),
    "gitlab": ("push-event.json", {"x-gitlab-event": "Push Hook"}),
    "gitea": ("push-event.json", {"x-gitea-event": "push"}),
}
FIELDS = [
    "ref", "after", "before", "repository", "project", "commits", "added", "modified", "removed",
    "pusher", "html_url", "web_url", "Records", "s3", "bucket", "name", "object", "key", "size",
    "eTag", "eventName", "eventTime", "Message", "Body", "body", "Sns", "Type", "EventSource",
    "eventSource", "specversion", "id", "source", "type", "data", "data_base64", "time",
]  # fmt: skip


# --- values --------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
KEYS = st.sampled_from(FIELDS) | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


def children(value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    return list(enumerate(value)) if isinstance(value, list) else []


def paths(value: Any, at: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON document, the document itself first."""
    yield at
    for key, inner in children(value):
        yield from paths(inner, (*at, key))


def replaced(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """``document`` with one to three places set to any JSON value.

    Half the time the place is one a parser reads (a name in :data:`FIELDS`).
    """
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        places = list(paths(document))
        read = [p for p in places if p and p[-1] in FIELDS]
        path = draw(st.sampled_from(read if read and draw(st.booleans()) else places))
        document = replaced(document, path, draw(JSON))
    return document


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


BODIES = st.one_of(
    JSON.map(orjson.dumps),
    st.binary(max_size=64),
    st.integers(250, 1100).map(deep),
    st.sampled_from([b"", b"{", b"null", b'"x"', b"1e999", b"[1,]", b"\xff\xfe"]),
)


# --- sources and how a delivery is judged ------------------------------------------------------


def spec(name: str, body: dict[str, Any]) -> EventSource:
    return EventSource.model_validate({"metadata": {"name": name}, "spec": body})


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, events: list[Event]) -> list[int]:
        self.events.extend(events)
        return list(range(len(events)))


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as running:
        yield running


def assert_storable(events: list[Event]) -> None:
    for event in events:
        assert validate_attributes(event.attributes, EdgeRules()) == []
        assert orjson.loads(to_json(event))["id"] == event.id


def deliver(runner: asyncio.Runner, make, body: bytes, headers: dict[str, str]) -> None:
    """One delivery to a fresh source: a 202, or InvalidEventError; what it publishes is storable."""
    recorder = Recorder()
    deliveries = SqliteDeliveries(Path(":memory:"))
    try:
        source: HttpSource = make(recorder, deliveries)
        try:
            reply = runner.run(source.handle(Delivery(headers, body)))
        except InvalidEventError:
            assert recorder.events == []
            return
        assert reply.status == 202
        assert reply.body["accepted"] == len(recorder.events)
        assert_storable(recorder.events)
    finally:
        deliveries.close()


def git(provider: str):
    source = spec("repo", {"git": {"provider": provider}})
    return lambda publish, deliveries: GitWebhookSource(source, publish, deliveries, None)


def s3():
    source = spec("uploads", {"s3": {"bucket": "sourcebucket"}})
    return lambda publish, deliveries: S3NotificationSource(source, publish, deliveries, None)


def webhook():
    source = spec("hook", {"webhook": {}})
    return lambda publish, deliveries: WebhookSource(source, publish, deliveries, None)


# --- git pushes ---------------------------------------------------------------------------------


def push(provider: str) -> Any:
    return json.loads((TESTDATA / "webhooks" / provider / PUSHES[provider][0]).read_bytes())


@pytest.mark.parametrize("provider", sorted(PUSHES))
@fuzz(300)
@given(data=st.data())
def test_mutated_pushes_map_or_are_refused(runner, provider, data):
    body = orjson.dumps(data.draw(mutated(push(provider))))
    deliver(runner, git(provider), body, PUSHES[provider][1])


@fuzz(300)
@given(provider=st.sampled_from(sorted(PUSHES)), body=BODIES)
def test_any_body_to_a_git_source_maps_or_is_refused(runner, provider, body):
    deliver(runner, git(provider), body, PUSHES[provider][1])


# --- S3 notifications ---------------------------------------------------------------------------


def aws_event() -> Any:
    return json.loads((TESTDATA / "s3" / "s3-event.json").read_bytes())


def minio_event() -> Any:
    record = {
        "eventVersion": "2.0", "eventSource": "minio:s3", "eventTime": "2024-05-01T10:00:00.000Z",
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": "sourcebucket"},
               "object": {"key": "a+b.txt", "size": 5, "eTag": "5d41", "sequencer": "17B5"}},
    }  # fmt: skip
    return {"EventName": "s3:ObjectCreated:Put", "Key": "sourcebucket/a+b.txt", "Records": [record]}


def wrapped(kind: str, inner: Any) -> Any:
    text = json.dumps(inner)
    return {
        "sns": {"Type": "Notification", "Message": text},
        "sqs": {"Body": text},
        "lambda-sqs": {"Records": [{"eventSource": "aws:sqs", "body": text}]},
        "lambda-sns": {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": text}}]},
    }[kind]


@st.composite
def notifications(draw: st.DrawFn) -> Any:
    """An S3 notification, maybe wrapped, with places set to any value (inside the wrapper too)."""
    inner = draw(mutated(draw(st.sampled_from([aws_event(), minio_event()]))))
    kind = draw(st.sampled_from(["direct", "sns", "sqs", "lambda-sqs", "lambda-sns"]))
    outer = inner if kind == "direct" else wrapped(kind, inner)
    return draw(mutated(outer)) if draw(st.booleans()) else outer


@fuzz(500)
@given(notification=notifications())
def test_mutated_s3_notifications_map_or_are_refused(runner, notification):
    deliver(runner, s3(), orjson.dumps(notification), {})


@fuzz(200)
@given(body=BODIES)
def test_any_body_to_an_s3_source_maps_or_is_refused(runner, body):
    deliver(runner, s3(), body, {})


# --- the generic webhook, CloudEvents included ---------------------------------------------------

CONTENT_TYPES = st.sampled_from([
    "application/json", "text/plain", "application/cloudevents+json",
    "application/cloudevents-batch+json", "application/x-www-form-urlencoded", "",
    "application/json; charset=utf-8", "application/cloudevents+json; charset=latin-1",
]) | st.text(max_size=30)  # fmt: skip
CE_HEADERS = st.dictionaries(
    st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject",
                     "ce-datacontenttype", "ce-x", "ce-traceparent", "ce-Bad_Name"]),
    st.text(max_size=20),
    max_size=6,
)  # fmt: skip


@fuzz(400)
@given(body=BODIES, content_type=CONTENT_TYPES, ce=CE_HEADERS, key=st.none() | st.text(max_size=20))
def test_any_webhook_delivery_maps_or_is_refused(runner, body, content_type, ce, key):
    headers = {"content-type": content_type, **ce}
    if key is not None:
        headers["idempotency-key"] = key
    deliver(runner, webhook(), body, headers)


def envelope() -> Any:
    event = new_event("com.example.placed", "/shop", {"order": 7}, id="o-7", subject="orders")
    return orjson.loads(to_json(event))


@fuzz(300)
@given(data=st.data(), batch=st.booleans())
def test_mutated_cloudevents_through_a_webhook_map_or_are_refused(runner, data, batch):
    document = data.draw(mutated([envelope(), envelope()] if batch else envelope()))
    kind = "application/cloudevents-batch+json" if batch else "application/cloudevents+json"
    deliver(runner, webhook(), orjson.dumps(document), {"content-type": kind})


# --- Kafka records ----------------------------------------------------------------------------


@dataclass
class Record:
    """What the Kafka source reads of a confluent_kafka Message."""

    value_: bytes | None
    key_: bytes | None
    headers_: list[tuple[str, bytes | None]] | None
    offset_: int = 7

    def value(self) -> bytes | None:
        return self.value_

    def key(self) -> bytes | None:
        return self.key_

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self.headers_

    def topic(self) -> str:
        return "orders"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.offset_


KAFKA_HEADERS = st.none() | st.lists(
    st.tuples(
        st.sampled_from(["content-type", "ce_specversion", "ce_id", "ce_source", "ce_type",
                         "ce_time", "ce_subject", "ce_Bad", "x"]),
        st.none() | st.binary(max_size=20) | st.sampled_from([b"1.0", b"application/json",
                                                              b"application/cloudevents+json"]),
    ),
    max_size=6,
)  # fmt: skip
KAFKA_VALUES = st.none() | BODIES | mutated(envelope()).map(orjson.dumps)
KAFKA = spec("k", {"kafka": {"brokers": ["127.0.0.1:9092"], "topics": ["orders"]}})


@fuzz(400)
@given(value=KAFKA_VALUES, key=st.none() | st.binary(max_size=20), headers=KAFKA_HEADERS)
def test_any_kafka_record_maps_or_is_refused_and_the_source_always_publishes(value, key, headers):
    record = Record(value, key, headers)
    with contextlib.suppress(InvalidEventError):
        assert_storable([event_for(record, "127.0.0.1:9092", "dev.cumulo.kafka.message", "k")])
    event = KafkaEventSource(KAFKA, Recorder()).map(record)  # never raises: nothing is lost
    assert event.id == "orders-0-7"
    assert_storable([event])


# --- signatures: any header is a 401/403, never an error -----------------------------------------

SIGNED = ["github", "gitea", "gitlab", "bearer", "hmac", "standard-webhooks"]
AUTH_HEADERS = st.dictionaries(
    st.sampled_from(["x-hub-signature-256", "x-gitea-signature", "x-gitlab-token", "authorization",
                     "x-cumulo-signature", "webhook-id", "webhook-timestamp", "webhook-signature"]),
    st.text(max_size=40) | st.sampled_from(["sha256=", "Bearer ", "v1,", "v1,x v2,y", "1614265330"]),
    max_size=8,
)  # fmt: skip


@fuzz(300)
@given(scheme=st.sampled_from(SIGNED), headers=AUTH_HEADERS, body=st.binary(max_size=32))
def test_any_signature_headers_are_accepted_or_rejected_never_an_error(scheme, headers, body):
    check = verifier(scheme, "whsec_c2VjcmV0", source="s", tolerance=300)
    try:
        check(headers, body)
    except WebhookRejectedError as e:
        assert "c2VjcmV0" not in str(e) and e.status in (401, 403)
