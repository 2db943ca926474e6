"""Event sources: turn outside happenings (cron ticks, Kafka, S3, Git, webhooks) into CloudEvents."""


def source_uri(source_name: str) -> str:
    """The CloudEvent ``source`` attribute of every event an EventSource emits."""
    return f"/cumulo/sources/{source_name}"
