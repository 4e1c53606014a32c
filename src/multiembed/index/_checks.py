"""Argument checks shared by the index backends; each failure names expected vs got."""

from __future__ import annotations

import numpy as np

from multiembed.errors import describe
from multiembed.index.errors import IndexInputError

check_int = IndexInputError.check_int


def check_vectors(where: str, name: str, x: object, dim: int) -> np.ndarray:
    """A `[N, dim]` finite float array, returned as C-contiguous float32."""
    if (
        not isinstance(x, np.ndarray)
        or x.ndim != 2
        or x.shape[1] != dim
        or not np.issubdtype(x.dtype, np.floating)
    ):
        raise IndexInputError(where, name, f"a [N, {dim}] float array", describe(x))
    out = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise IndexInputError(where, name, "finite values", f"NaN or inf in row {bad}")
    return out


def check_ids(where: str, ids: object, count: int) -> np.ndarray:
    """`[count]` distinct non-negative integer ids, returned as int64 (-1 is padding)."""
    if (
        not isinstance(ids, np.ndarray)
        or ids.ndim != 1
        or not np.issubdtype(ids.dtype, np.integer)
        or ids.shape[0] != count
    ):
        raise IndexInputError(where, "ids", f"a [{count}] integer array", describe(ids))
    out = ids.astype(np.int64, copy=False)
    if out.size and out.min() < 0:
        raise IndexInputError(where, "ids", "non-negative ids", f"{int(out.min())}")
    uniq, counts = np.unique(out, return_counts=True)
    if uniq.size != out.size:
        raise IndexInputError(where, "ids", "distinct ids", f"{int(uniq[counts > 1][0])} repeated")
    return out


def check_new_ids(where: str, new: np.ndarray, existing: np.ndarray) -> None:
    """`new` must not repeat an id already in the index (`existing` sorted or not)."""
    clash = np.intersect1d(new, existing, assume_unique=True)
    if clash.size:
        raise IndexInputError(
            where, "ids", "ids not already in the index", f"{int(clash[0])} already present"
        )


def check_depths(where: str, depths: object, q: int, k: int) -> np.ndarray | None:
    """None, or ``[q]`` ints in ``[1, k]``: how deep each query row is needed."""
    if depths is None:
        return None
    if (
        not isinstance(depths, np.ndarray)
        or depths.shape != (q,)
        or not np.issubdtype(depths.dtype, np.integer)
        or (q and (depths.min() < 1 or depths.max() > k))
    ):
        raise IndexInputError(where, "depths", f"None or [{q}] ints in [1, {k}]", describe(depths))
    return depths.astype(np.int64, copy=False)
