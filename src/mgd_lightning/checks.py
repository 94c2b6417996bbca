"""Argument checks shared by networks and datamodules: one message for one kind of bad value."""

from __future__ import annotations

from typing import Any

__all__ = ["check_positive_int"]


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer > 0 (not a bool); else raise a ``ValueError``.

    Args:
        name: The argument's name, shown in the message.
        value: The value given.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return value
