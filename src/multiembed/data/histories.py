"""Each user's latest engagements as one row: the user tower's right-aligned ``history``."""

from __future__ import annotations

import numpy as np


def latest_per_user(
    user: np.ndarray, values: np.ndarray, n_users: int, length: int, *, fill: object
) -> np.ndarray:
    """``[U, L]``: each user's last ``L`` values, oldest first, right-aligned.

    A user's latest row sits at position ``L - 1``; the slots before their first
    kept row, and the whole row of a user without rows, hold `fill`.

    Args:
        user: ``[E]`` int user indices in ``[0, U)``, sorted ascending; a user's
            rows are in time order.
        values: ``[E]`` one value per row (item ids, validity flags, ...); the
            result has their dtype.
        n_users: ``U``.
        length: ``L``, slots per user.
        fill: the value of empty slots (``-1`` for item ids, ``False`` for flags).

    Raises:
        ValueError: `user` not sorted or outside ``[0, U)``, or `values` of another length.

    Example:
        >>> latest_per_user(np.array([0, 0, 0, 2]), np.array([5, 6, 7, 1]), 3, 2, fill=-1)
        array([[ 6,  7],
               [-1, -1],
               [-1,  1]])
    """
    if values.shape != user.shape or user.ndim != 1:
        raise ValueError(
            f"latest_per_user: expected user and values of one shape [E], "
            f"got {list(user.shape)} and {list(values.shape)}"
        )
    if user.size and (user[0] < 0 or user[-1] >= n_users or np.any(user[1:] < user[:-1])):
        raise ValueError(
            f"latest_per_user: expected user sorted ascending in [0, {n_users}), "
            f"got values from {int(user.min())} to {int(user.max())}"
            + ("" if np.all(user[1:] >= user[:-1]) else ", not sorted")
        )
    counts = np.bincount(user, minlength=n_users)  # [U]
    from_end = np.repeat(np.cumsum(counts), counts) - np.arange(user.size)  # 1: a user's last
    keep = from_end <= length
    out = np.full((n_users, length), fill, dtype=values.dtype)
    out[user[keep], length - from_end[keep]] = values[keep]
    return out
