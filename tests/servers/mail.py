"""Placeholder: filled in by the mail work."""
