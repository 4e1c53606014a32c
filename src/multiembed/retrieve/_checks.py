"""Argument checks of the retrieval plan."""

from __future__ import annotations

import numpy as np

from multiembed.errors import describe
from multiembed.retrieve.errors import RetrievalInputError

__all__ = ["describe", "non_negative_int"]


def non_negative_int(where: str, name: str, value: object) -> int:
    """`value` must be an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise RetrievalInputError(where, name, "a non-negative int", repr(value))
    return int(value)
