"""Event sources: turn outside happenings (cron ticks, Kafka, S3, Git, webhooks) into CloudEvents."""

from cumulo.spec.project import SOURCE_EXTENSION, source_uri

__all__ = ["SOURCE_EXTENSION", "source_uri"]
