"""Splitting canonical engagements into training and evaluation events.

Two protocols, both pure functions of the engagement columns that return
per-event masks or role codes (the tables themselves are never copied):

- `time_split`: the paper's protocol (Section 4.1.1): a window of
  ``train_days`` for training followed by ``eval_days`` for evaluation
  (14 + 1 days in the paper), ending at the last event.
- `comirec_split`: the ComiRec protocol: users, not events, are split into
  train / valid / test (8:1:1); a held-out user's earliest events are history
  and the rest are targets.

Inputs are 1-D integer arrays: NumPy arrays, Python sequences, or Arrow
(chunked) arrays such as ``engagements.column("ts")``. Events are indexed by
their row in the input (``E`` rows).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from multiembed.errors import DataError

SECONDS_PER_DAY = 86_400


class TimeSplit(NamedTuple):
    """Result of `time_split`: masks over events and the window boundaries.

    Intervals are open on the left and closed on the right, so the window ends
    exactly at (and includes) ``end``:

    - train: ``train_start < ts <= eval_start``
    - eval:  ``eval_start < ts <= end``

    Events at or before ``train_start`` are in neither mask but may still serve
    as history; events after ``end`` (possible when ``end`` is given) are in
    neither.
    """

    train: np.ndarray  # [E] bool
    eval: np.ndarray  # [E] bool
    train_start: int  # seconds, exclusive
    eval_start: int  # seconds: last training second, exclusive start of eval
    end: int  # seconds, inclusive


class Role(IntEnum):
    """Per-event role under the ComiRec protocol (stored as int8)."""

    TRAIN = 0
    VALID_HISTORY = 1
    VALID_TARGET = 2
    TEST_HISTORY = 3
    TEST_TARGET = 4


def time_split(
    ts: object, *, train_days: float, eval_days: float, end: int | None = None
) -> TimeSplit:
    """Split events by time: the last ``eval_days`` evaluate, the ``train_days`` before train.

    Args:
        ts: ``[E]`` event timestamps in seconds (int64).
        train_days: length of the training window in days (paper: 14).
        eval_days: length of the evaluation window in days (paper: 1).
        end: last second of the window (inclusive); defaults to ``max(ts)``.

    Returns:
        `TimeSplit` with ``[E]`` boolean masks and the boundaries (see there).
        Day lengths are converted to whole seconds by rounding.

    Raises:
        ValueError: non-positive window lengths or a malformed ``ts``.
        DataError: no events, or no event falls in one of the two windows.

    Example:
        >>> day = 86_400
        >>> ts = [0, day, 2 * day, 3 * day, 3 * day + 5]
        >>> s = time_split(ts, train_days=2, eval_days=1)
        >>> s.train.tolist(), s.eval.tolist()
        ([False, True, True, False, False], [False, False, False, True, True])
        >>> s.train_start, s.eval_start, s.end
        (5, 172805, 259205)
    """
    if not train_days > 0:
        raise ValueError(f"time_split: expected train_days > 0, got {train_days}")
    if not eval_days > 0:
        raise ValueError(f"time_split: expected eval_days > 0, got {eval_days}")
    t = _int64_column("time_split", "ts", ts)
    if t.size == 0:
        raise DataError("time_split: no engagements to split (expected at least one event)")
    stop = int(t.max()) if end is None else int(end)
    eval_start = stop - round(eval_days * SECONDS_PER_DAY)
    train_start = eval_start - round(train_days * SECONDS_PER_DAY)
    train = (t > train_start) & (t <= eval_start)
    evaluate = (t > eval_start) & (t <= stop)
    for name, mask, lo, hi in (
        ("training", train, train_start, eval_start),
        ("evaluation", evaluate, eval_start, stop),
    ):
        if not mask.any():
            raise DataError(
                f"time_split: no events in the {name} window ({lo}, {hi}] "
                f"(expected at least one; events span [{int(t.min())}, {int(t.max())}])"
            )
    return TimeSplit(train, evaluate, train_start, eval_start, stop)


def comirec_split(
    user_ids: object,
    ts: object,
    *,
    seed: int,
    valid_share: float = 0.1,
    test_share: float = 0.1,
    history_share: float = 0.8,
) -> np.ndarray:
    """Split users into train / valid / test and held-out users' events into history / target.

    The distinct users, in ascending id order, are permuted with
    ``numpy.random.default_rng(seed)``; the first ``round(U * valid_share)`` of
    the permutation are validation users, the next ``round(U * test_share)``
    test users and the rest training users. Every event of a training user is
    `Role.TRAIN`. A held-out user's events are ordered by time (ties keep input
    order); the first ``floor(n_u * history_share)`` are history and the rest,
    always at least one, are targets (as in ComiRec's evaluation code).

    Args:
        user_ids: ``[E]`` user id of each event (any non-negative integers).
        ts: ``[E]`` timestamps in seconds.
        seed: seed of the user permutation.
        valid_share, test_share: shares of users held out, each in [0, 0.5].
        history_share: share of a held-out user's events used as history, in (0, 1).

    Returns:
        ``[E]`` int8 array of `Role` codes.

    Raises:
        ValueError: malformed arrays or shares out of range.
        DataError: no events.

    Example:
        >>> users = [0, 0, 0, 0, 0, 1, 1, 2, 2, 2]
        >>> ts = [5, 1, 2, 3, 4, 1, 2, 1, 2, 3]
        >>> roles = comirec_split(users, ts, seed=0, valid_share=0.34, test_share=0.34)
        >>> [Role(r).name for r in roles[:5]]   # user 0 held out: 4 history, 1 target
        ['TEST_TARGET', 'TEST_HISTORY', 'TEST_HISTORY', 'TEST_HISTORY', 'TEST_HISTORY']
    """
    where = "comirec_split"
    for name, share, hi in (("valid_share", valid_share, 0.5), ("test_share", test_share, 0.5)):
        if not 0.0 <= share <= hi:
            raise ValueError(f"{where}: expected {name} in [0, {hi}], got {share}")
    if not 0.0 < history_share < 1.0:
        raise ValueError(f"{where}: expected history_share in (0, 1), got {history_share}")
    users = _int64_column(where, "user_ids", user_ids)
    t = _int64_column(where, "ts", ts)
    if users.shape != t.shape:
        raise ValueError(
            f"{where}: expected user_ids and ts of the same length, got {users.size} and {t.size}"
        )
    if users.size == 0:
        raise DataError(f"{where}: no engagements to split (expected at least one event)")

    distinct, user_index = np.unique(users, return_inverse=True)  # [U], [E]
    n_users = distinct.size
    n_valid = round(n_users * valid_share)
    n_test = round(n_users * test_share)
    order = np.random.default_rng(seed).permutation(n_users)
    group = np.zeros(n_users, dtype=np.int8)  # 0 train, 1 valid, 2 test
    group[order[:n_valid]] = 1
    group[order[n_valid : n_valid + n_test]] = 2

    # Rank of each event inside its user's time-ordered events (ties: input order).
    e = users.size
    by_user_time = np.lexsort((np.arange(e), t, user_index))  # [E]
    sorted_users = user_index[by_user_time]
    counts = np.bincount(user_index, minlength=n_users)  # [U]
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # [U] start of each user's run
    rank = np.empty(e, dtype=np.int64)
    rank[by_user_time] = np.arange(e) - first[sorted_users]
    # The epsilon keeps 0.8 * 10 from flooring to 7 through representation error.
    n_history = np.floor(counts * history_share + 1e-9).astype(np.int64)  # [U]
    is_history = rank < n_history[user_index]

    event_group = group[user_index]
    roles = np.full(e, Role.TRAIN, dtype=np.int8)
    for g, hist, target in (
        (1, Role.VALID_HISTORY, Role.VALID_TARGET),
        (2, Role.TEST_HISTORY, Role.TEST_TARGET),
    ):
        held = event_group == g
        roles[held & is_history] = hist
        roles[held & ~is_history] = target
    return roles


def _int64_column(where: str, name: str, values: object) -> np.ndarray:
    """A 1-D int64 NumPy view or copy of `values` (NumPy, sequence or Arrow, no nulls)."""
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if values.null_count:
            raise ValueError(f"{where}: expected {name} without nulls, got {values.null_count}")
        if not pa.types.is_integer(values.type):
            raise ValueError(f"{where}: expected {name} of an integer type, got {values.type}")
        values = values.to_numpy()
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{where}: expected {name} of shape [E], got shape {list(array.shape)}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{where}: expected {name} of an integer dtype, got {array.dtype}")
    return array.astype(np.int64, copy=False)
