"""Placeholder: filled in by the minio work."""
