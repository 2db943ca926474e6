"""Receives a legacy Pub/Sub event, which the framework converts to a CloudEvent.

The expected values follow from tests/test_data/pubsub_text-legacy-input.json.
"""

from cloudevents.http import CloudEvent

EXPECTED_ATTRIBUTES = {
    "specversion": "1.0",
    "id": "5150418391042671",
    "time": "2021-03-02T09:41:07.311Z",
    "type": "google.cloud.pubsub.topic.v1.messagePublished",
    "source": "//pubsub.googleapis.com/projects/cumulo-tests/topics/greetings",
    "datacontenttype": "application/json",
}
EXPECTED_MESSAGE = {
    "@type": "type.googleapis.com/google.pubsub.v1.PubsubMessage",
    "attributes": {"origin": "cumulo"},
    "data": "aGVsbG8gZnJvbSBwdWIvc3Vi",
    "messageId": "5150418391042671",
    "publishTime": "2021-03-02T09:41:07.311Z",
}


def function(cloud_event: CloudEvent) -> None:
    for name, expected in EXPECTED_ATTRIBUTES.items():
        if cloud_event[name] != expected:
            raise ValueError(f"{name} is {cloud_event[name]!r}, expected {expected!r}")
    if cloud_event.data != {"message": EXPECTED_MESSAGE}:
        raise ValueError(f"unexpected data {cloud_event.data!r}")
