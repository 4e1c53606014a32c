"""Argument checks of the retrieval plan."""

from __future__ import annotations

import numpy as np

from multiembed.retrieve.errors import RetrievalInputError


def describe(x: object) -> str:
    """Shape and dtype of an array, or the type of anything else."""
    if isinstance(x, np.ndarray):
        return f"[{', '.join(str(s) for s in x.shape)}] {x.dtype}"
    return type(x).__name__


def non_negative_int(where: str, name: str, value: object) -> int:
    """`value` must be an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise RetrievalInputError(where, name, "a non-negative int", repr(value))
    return int(value)
