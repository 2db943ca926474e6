"""The S3 notification receiver: AWS's real payload, its SNS and SQS wrappings, MinIO's shape."""

from __future__ import annotations

import base64
import json

import pytest

from cumulo.errors import BadSignatureError, InvalidEventError, MissingSignatureError
from cumulo.events.sources.s3 import S3NotificationSource
from cumulo.events.sources.webhook import Delivery
from cumulo.spec.models import EventSource
from tests.events.sources.conftest import TESTDATA

AWS_EVENT = (TESTDATA / "s3" / "s3-event.json").read_bytes()
TOKEN = "s3-t0ken"
BEARER = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}


def s3_source(type: str | None = None, **spec) -> EventSource:
    body = {"s3": {"bucket": "sourcebucket", **spec}, **({"type": type} if type else {})}
    return EventSource.model_validate({"metadata": {"name": "uploads"}, "spec": body})


def receiver(recorder, deliveries, token: str | None = TOKEN, **spec) -> S3NotificationSource:
    return S3NotificationSource(s3_source(**spec), recorder, deliveries, token)


def sns(message: bytes) -> bytes:
    return json.dumps({
        "Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:uploads", "Subject": "Amazon S3 Notification",
        "Message": message.decode(), "Timestamp": "2024-01-01T00:00:00.000Z",
    }).encode()  # fmt: skip


def minio_record(key: str, event: str = "s3:ObjectCreated:Put") -> dict:
    return {
        "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
        "eventTime": "2024-05-01T10:00:00.000Z", "eventName": event,
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "Config",
            "bucket": {"name": "sourcebucket", "arn": "arn:aws:s3:::sourcebucket"},
            "object": {"key": key, "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592",
                       "contentType": "text/plain", "sequencer": "17B5C7E0A1B2C3D4"},
        },
    }  # fmt: skip


def minio_body(key: str, event: str = "s3:ObjectCreated:Put") -> bytes:
    record = minio_record(key, event)
    wrapper = {"EventName": event, "Key": f"sourcebucket/{key}", "Records": [record]}
    return json.dumps(wrapper).encode()


async def test_the_aws_payload_becomes_one_object_created_event(recorder, deliveries):
    reply = await receiver(recorder, deliveries).handle(Delivery(BEARER, AWS_EVENT))
    assert reply.status == 202 and reply.body["accepted"] == 1
    [event] = recorder.events
    assert event.type == "dev.cumulo.object.created"
    assert event.source == "s3://sourcebucket"
    assert event.subject == "Happy Face.jpg"
    assert event.id == "sourcebucket/Happy Face.jpg@Happy Sequencer"
    assert event.time == "1970-01-01T00:00:00.123Z"
    assert event.attributes["cumulosource"] == "uploads"
    assert event.data == {
        "bucket": "sourcebucket",
        "key": "Happy Face.jpg",
        "size": 1024,
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "versionId": "version",
        "eventName": "ObjectCreated:Put",
        "uri": "s3://sourcebucket/Happy Face.jpg",
    }


@pytest.mark.parametrize(
    "wrap",
    [
        sns,
        lambda m: json.dumps(
            {"MessageId": "m-1", "ReceiptHandle": "r", "Body": m.decode()}
        ).encode(),
        lambda m: json.dumps(
            {"Records": [{"eventSource": "aws:sqs", "body": m.decode()}]}
        ).encode(),
        lambda m: json.dumps({"MessageId": "m-2", "Body": sns(m).decode()}).encode(),  # SNS in SQS
    ],
    ids=["sns", "sqs-message", "sqs-lambda", "sns-in-sqs"],
)
async def test_sns_and_sqs_wrappings_carry_the_same_event(recorder, deliveries, wrap):
    reply = await receiver(recorder, deliveries).handle(Delivery(BEARER, wrap(AWS_EVENT)))
    assert reply.body["accepted"] == 1
    assert [e.subject for e in recorder.events] == ["Happy Face.jpg"]
    assert recorder.events[0].data["uri"] == "s3://sourcebucket/Happy Face.jpg"


async def test_minio_webhook_shape_decodes_plus_and_percent_and_drops_the_s3_prefix(
    recorder, deliveries
):
    source = receiver(recorder, deliveries, endpoint="http://127.0.0.1:9000/")
    for key in ("data%2Fred+flower.jpg", "data%2Fa%2Bb.csv"):
        assert (await source.handle(Delivery(BEARER, minio_body(key)))).status == 202
    assert [e.subject for e in recorder.events] == ["data/red flower.jpg", "data/a+b.csv"]
    event = recorder.events[0]
    assert event.source == "http://127.0.0.1:9000/sourcebucket"
    assert event.data["eventName"] == "ObjectCreated:Put"
    assert event.data["uri"] == "s3://sourcebucket/data/red flower.jpg"
    assert event.id == "sourcebucket/data/red flower.jpg@17B5C7E0A1B2C3D4"


@pytest.mark.parametrize(
    "body, note",
    [
        (json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "sourcebucket"}),
         "s3:TestEvent"),
        (sns(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}).encode()).decode(),
         "s3:TestEvent"),
        (json.dumps({"Type": "SubscriptionConfirmation", "Token": "t",
                     "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"}),
         "confirm it at https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"),
        (minio_body("gone.txt", "s3:ObjectRemoved:Delete").decode(), "'ObjectRemoved:Delete' is not"),
        (json.dumps({"Records": []}), "no records"),
    ],
    ids=["test-event", "test-event-via-sns", "sns-confirmation", "removed", "empty"],
)  # fmt: skip
async def test_messages_without_created_objects_are_answered_and_not_published(
    recorder, deliveries, body, note
):
    reply = await receiver(recorder, deliveries).handle(Delivery(BEARER, body.encode()))
    assert reply.status == 202 and reply.body["accepted"] == 0
    assert note in reply.body["note"]
    assert recorder.events == []


async def test_prefix_suffix_and_bucket_filter_the_decoded_key(recorder, deliveries):
    source = receiver(recorder, deliveries, prefix="data/", suffix=".jpg")
    other = json.loads(minio_body("data%2Fx.jpg"))
    other["Records"][0]["s3"]["bucket"]["name"] = "elsewhere"
    bodies = [minio_body("data%2Fred+flower.jpg"), minio_body("data%2Fa.csv"),
              minio_body("img%2Fb.jpg"), json.dumps(other).encode()]  # fmt: skip
    replies = [await source.handle(Delivery(BEARER, body)) for body in bodies]
    assert [r.body["accepted"] for r in replies] == [1, 0, 0, 0]
    assert "outside the prefix/suffix" in replies[1].body["note"]
    assert "bucket 'elsewhere'" in replies[3].body["note"]
    assert [e.subject for e in recorder.events] == ["data/red flower.jpg"]
    assert source.stats.ignored == 3


async def test_a_replayed_delivery_is_published_once(recorder, deliveries):
    source = receiver(recorder, deliveries)
    first = await source.handle(Delivery(BEARER, minio_body("a.txt")))
    again = await source.handle(Delivery(BEARER, minio_body("a.txt")))
    assert first.body["accepted"] == 1
    assert again.body == {"accepted": 0, "duplicate": True, "note": again.body["note"]}
    assert len(recorder.events) == 1 and source.stats.duplicates == 1


async def test_the_token_is_checked_before_the_body_is_read(recorder, deliveries):
    source = receiver(recorder, deliveries, type="com.example.upload")
    with pytest.raises(MissingSignatureError, match="Authorization"):
        await source.handle(Delivery({}, AWS_EVENT))
    with pytest.raises(BadSignatureError):
        await source.handle(Delivery({"authorization": "Bearer guess"}, b"not json"))
    basic = base64.b64encode(f"sns:{TOKEN}".encode()).decode()
    reply = await source.handle(Delivery({"authorization": f"Basic {basic}"}, AWS_EVENT))
    assert reply.body["accepted"] == 1 and recorder.events[0].type == "com.example.upload"
    assert source.stats.rejected == {"missing-signature": 1, "bad-signature": 1}


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"hello": 1}', "no Records"),
        (b'{"Records": [{"eventName": "ObjectCreated:Put"}]}', r"Records\[0\]\.s3: is missing"),
        (b'{"Message": {"not": "a string"}}', "SNS Message"),
    ],
)
async def test_malformed_bodies_are_invalid(recorder, deliveries, body, problem):
    with pytest.raises(InvalidEventError, match=problem):
        await receiver(recorder, deliveries, token=None).handle(Delivery({}, body))
    assert recorder.events == []


def record_with(**changes) -> dict:
    record = minio_record("a.txt")
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = record
        for name in parents:
            target = target[name]
        target[last] = value
    return record


@pytest.mark.parametrize(
    "records, problem",
    [
        (["x"], r"Records\[0\]: must be an object"),
        ([record_with(s3__bucket="x")], r"Records\[0\]\.s3\.bucket: must be an object"),
        ([record_with(s3__bucket__name=5)], r"Records\[0\]\.s3\.bucket\.name: must be a string"),
        ([record_with(s3__object__key=[])], r"s3\.object\.key: must be a string"),
        ([record_with(s3__object__size="5")], r"s3\.object\.size: must be an integer"),
        ([record_with(s3__object__eTag={})], r"s3\.object\.eTag: must be a string"),
        ([record_with(eventName=1)], r"Records\[0\]\.eventName: must be a string"),
        ([record_with(eventTime="yesterday")], r"eventTime: must be an RFC 3339 timestamp"),
        ([minio_record("a"), record_with(s3=[])], r"Records\[1\]\.s3: must be an object"),
        ([{"EventSource": "aws:sns", "Sns": "x"}], r"Records\[0\]\.Sns: must be an object"),
        ([{"eventSource": "aws:sqs", "body": 7}], r"Records\[0\]\.body is not a JSON string"),
    ],
)
async def test_wrong_types_are_invalid_and_name_the_field(recorder, deliveries, records, problem):
    body = json.dumps({"Records": records}).encode()
    with pytest.raises(InvalidEventError, match=problem):
        await receiver(recorder, deliveries, token=None).handle(Delivery({}, body))
    assert recorder.events == []


async def test_a_wrapped_record_names_its_wrapper(recorder, deliveries):
    inner = json.dumps({"Records": [record_with(s3__bucket="x")]}).encode()
    with pytest.raises(InvalidEventError, match=r"Message → Records\[0\]\.s3\.bucket: must be"):
        await receiver(recorder, deliveries, token=None).handle(Delivery({}, sns(inner)))
