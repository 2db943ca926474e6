"""Broker-side names of Cumulo's consumer groups (no broker client needed to compute them).

Cumulo names a trigger's group ``trigger/<name>``; JetStream consumer names may
not hold ``/``, so the NATS backend, and the KEDA scaler that watches it, use
:func:`consumer_name`.
"""

from __future__ import annotations

import re


def trigger_group(trigger: str) -> str:
    """The consumer group of a trigger, wherever it is dispatched (``cumulo up``, ``cumulo job``)."""
    return f"trigger/{trigger}"


_NAME_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def consumer_name(group: str) -> str:
    """A JetStream consumer name for a group: ``trigger/train-0`` → ``trigger~2Ftrain-0``.

    Consumer names may not hold ``.``, ``/``, ``*``, ``>`` or whitespace; every
    other byte but letters, digits, ``_`` and ``-`` is written ``~XX``.
    """
    return "".join(
        chr(byte) if chr(byte) in _NAME_SAFE else f"~{byte:02X}" for byte in group.encode()
    )


def group_name(consumer: str) -> str:
    """The group a consumer name stands for (the inverse of :func:`consumer_name`)."""
    return re.sub(rb"~([0-9A-F]{2})", lambda m: bytes([int(m[1], 16)]), consumer.encode()).decode()
