"""``@cumulo.function`` and ``cumulo.on``: the decorator form of the spec.

They live in :mod:`cumulo.spec.registry`; this module keeps the name users import.
"""

from cumulo.spec.registry import (
    Declaration,
    Registry,
    default_registry,
    function,
    on,
    use_registry,
)

__all__ = ["Declaration", "Registry", "default_registry", "function", "on", "use_registry"]
