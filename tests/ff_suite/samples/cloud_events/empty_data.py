"""A CloudEvent function for events that carry no data (or an empty JSON string)."""

from cloudevents.http import CloudEvent


def function(cloud_event: CloudEvent) -> None:
    if cloud_event["id"] != "my-id":
        raise ValueError(f"unexpected id {cloud_event['id']!r}")
    if cloud_event.data not in (None, "", b""):
        raise ValueError(f"expected no data, got {cloud_event.data!r}")
