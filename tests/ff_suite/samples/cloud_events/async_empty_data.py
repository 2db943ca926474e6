"""The async twin of empty_data.py."""

from cloudevents.http import CloudEvent


async def function(cloud_event: CloudEvent) -> None:
    if cloud_event["id"] != "my-id":
        raise ValueError(f"unexpected id {cloud_event['id']!r}")
    if cloud_event.data not in (None, "", b""):
        raise ValueError(f"expected no data, got {cloud_event.data!r}")
