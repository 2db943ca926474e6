"""The async twin of main.py: checks it received the greeting the tests send."""

from cloudevents.http import CloudEvent

EXPECTED_ATTRIBUTES = {
    "id": "my-id",
    "source": "from-galaxy-far-far-away",
    "type": "cloud_event.greet.you",
}


async def function(cloud_event: CloudEvent) -> None:
    for name, expected in EXPECTED_ATTRIBUTES.items():
        if cloud_event[name] != expected:
            raise ValueError(f"{name} is {cloud_event[name]!r}, expected {expected!r}")
    if cloud_event.data != {"name": "john"}:
        raise ValueError(f"unexpected data {cloud_event.data!r}")
