"""Argument checks of the retrieval plan."""

from __future__ import annotations

from multiembed.errors import describe
from multiembed.retrieve.errors import RetrievalInputError

__all__ = ["describe", "non_negative_int"]


def non_negative_int(where: str, name: str, value: object) -> int:
    """`value` must be an int >= 0."""
    return RetrievalInputError.check_int(where, name, value, 0, "a non-negative int")
