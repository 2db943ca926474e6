"""A source file that does not compile (this file is excluded from ruff)."""


def function(data, context):
    pass)
