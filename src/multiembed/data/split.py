"""Splitting canonical engagements into training and evaluation events.

Three protocols (`SplitConfig.protocol`), pure functions of the engagement
columns that return per-event masks or role codes (the tables themselves are
never copied); `split_events` applies the configured one:

- ``users`` (the default): a share of users is held out for validation and
  another for testing; a held-out user's earliest events are history and the
  rest targets. Every other event, *including the held-out users' histories*,
  is a training target, so training sees nearly the whole log (about 96 % with
  the default shares) whatever its span or timestamp resolution: timestamps
  only order a user's events.
- ``comirec``: the ComiRec protocol, the same user split, but a held-out
  user's events are never trained on (`comirec_split`).
- ``time``: the paper's protocol (Section 4.1.1, `time_split`): a window of
  ``train_days`` for training followed by ``eval_days`` for evaluation
  (14 + 1 days in the paper), ending at the last event; the evaluation
  window's users are divided between validation and test.

Inputs are 1-D integer arrays: NumPy arrays, Python sequences, or Arrow
(chunked) arrays such as ``engagements.column("ts")``. Events are indexed by
their row in the input (``E`` rows).
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from multiembed.config import SplitConfig
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
    UNUSED = 5  # time protocol: before the training window (history only) or after the end


MIN_TRAIN_SHARE = 0.5
"""Below this share of positive engagements as training targets `split_events` refuses."""


class EventSplit(NamedTuple):
    """Result of `split_events`: each event's role and what training may use.

    Attributes:
        roles: ``[E]`` int8 `Role` codes. Validation and test records are the
            ``VALID_TARGET`` and ``TEST_TARGET`` events.
        train: ``[E]`` bool, events that are training targets (positive actions
            among them become examples).
        history: ``[E]`` bool, events a training example's history may hold, or
            None for every event.
        eval_history: True when a held-out record's history is restricted to its
            user's ``*_HISTORY`` events (``users`` and ``comirec``); False when
            it holds every earlier event (``time``).
        eval_start: ``time``: the first second of the evaluation window; None otherwise
            (each held-out user's own first target starts its evaluation).
    """

    roles: np.ndarray
    train: np.ndarray
    history: np.ndarray | None
    eval_history: bool
    eval_start: int | None = None

    def summary(self, positive: np.ndarray) -> dict[str, int | float]:
        """Counts for reports: engagements, positives, training targets, held out.

        Args:
            positive: ``[E]`` bool, events with a positive action.
        """
        targets = int(np.count_nonzero(self.train & positive))
        positives = int(np.count_nonzero(positive))
        return {
            "engagements": int(self.roles.size),
            "positive": positives,
            "training_targets": targets,
            "training_share": targets / positives if positives else 0.0,
            "validation_targets": int(np.count_nonzero(self.roles == Role.VALID_TARGET)),
            "test_targets": int(np.count_nonzero(self.roles == Role.TEST_TARGET)),
        }


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
    for name, days in (("train_days", train_days), ("eval_days", eval_days)):
        if not days > 0:
            raise ValueError(f"time_split: expected {name} > 0, got {days}")
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

    _, user_index, counts = np.unique(users, return_inverse=True, return_counts=True)  # [E], [U]
    event_group = _user_groups(users, seed, valid_share, test_share)  # [E]

    # Rank of each event inside its user's time-ordered events (ties: input order).
    e = users.size
    by_user_time = np.lexsort((np.arange(e), t, user_index))  # [E]
    sorted_users = user_index[by_user_time]
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # [U] start of each user's run
    rank = np.empty(e, dtype=np.int64)
    rank[by_user_time] = np.arange(e) - first[sorted_users]
    # The epsilon keeps 0.8 * 10 from flooring to 7 through representation error.
    n_history = np.floor(counts * history_share + 1e-9).astype(np.int64)  # [U]
    is_history = rank < n_history[user_index]

    roles = np.full(e, Role.TRAIN, dtype=np.int8)
    for g, hist, target in (
        (1, Role.VALID_HISTORY, Role.VALID_TARGET),
        (2, Role.TEST_HISTORY, Role.TEST_TARGET),
    ):
        held = event_group == g
        roles[held & is_history] = hist
        roles[held & ~is_history] = target
    return roles


def split_events(user_ids: object, ts: object, positive: object, config: SplitConfig) -> EventSplit:
    """Split a log as ``config.protocol`` says (see the module docstring).

    Args:
        user_ids: ``[E]`` user of each event.
        ts: ``[E]`` timestamps in seconds (only their order matters, except for ``time``).
        positive: ``[E]`` bool, events with a positive action (for the training share).
        config: the split settings.

    Returns:
        An `EventSplit`.

    Raises:
        DataError: no events; or fewer than `MIN_TRAIN_SHARE` of the positive
            engagements would be training targets and ``config.allow_small_train``
            is False (the message names the protocol, the counts and the settings
            to change).

    Example:
        >>> users = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
        >>> ts = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
        >>> s = split_events(users, ts, [True] * 10,
        ...                  SplitConfig(valid_share=0.5, test_share=0.0))
        >>> s.train.astype(int).tolist()       # one user held out: its last event
        [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
        >>> s.summary(np.ones(10, bool))["training_targets"]
        9
    """
    users = _int64_column("split_events", "user_ids", user_ids)
    t = _int64_column("split_events", "ts", ts)
    pos = np.asarray(positive, dtype=bool)
    if config.protocol == "time":
        window = time_split(t, train_days=config.train_days, eval_days=config.eval_days)
        roles = np.full(t.size, Role.UNUSED, dtype=np.int8)
        roles[window.train] = Role.TRAIN
        # the evaluation window's users, divided between validation and test in proportion
        held = config.valid_share + config.test_share
        share = config.valid_share / held if held > 0 else 0.5
        in_valid = _user_groups(users, config.seed, share, 1.0 - share) == 1
        roles[window.eval & in_valid] = Role.VALID_TARGET
        roles[window.eval & ~in_valid] = Role.TEST_TARGET
        result = EventSplit(
            roles, window.train, None, eval_history=False, eval_start=window.eval_start + 1
        )
    else:
        roles = comirec_split(
            users,
            t,
            seed=config.seed,
            valid_share=config.valid_share,
            test_share=config.test_share,
            history_share=config.history_share,
        )
        kept: tuple[Role, ...] = (Role.TRAIN,)
        if config.protocol == "users":
            kept = (Role.TRAIN, Role.VALID_HISTORY, Role.TEST_HISTORY)
        train = np.isin(roles, kept)
        result = EventSplit(roles, train, train, eval_history=True)
    counts = result.summary(pos)
    if counts["training_share"] < MIN_TRAIN_SHARE and not config.allow_small_train:
        raise DataError(
            f"split.protocol = {config.protocol!r} keeps {counts['training_targets']:,} of "
            f"{counts['positive']:,} positive engagements "
            f"({100 * counts['training_share']:.1f} %) as training targets, under half of "
            f'the log{_advice(config, t)}. Use split.protocol = "users" (the default), '
            "or set split.allow_small_train = true to train on it anyway"
        )
    return result


def _advice(config: SplitConfig, t: np.ndarray) -> str:
    if config.protocol == "time" and t.size:
        days = (int(t.max()) - int(t.min())) / SECONDS_PER_DAY
        return (
            f": the window of split.train_days = {config.train_days:g} + split.eval_days = "
            f"{config.eval_days:g} days covers little of a log spanning {days:,.1f} days"
        )
    if config.protocol == "comirec":
        return (
            f": split.valid_share = {config.valid_share:g} and split.test_share = "
            f"{config.test_share:g} hold out too many users"
        )
    return ""


def _user_groups(users: np.ndarray, seed: int, valid_share: float, test_share: float) -> np.ndarray:
    """``[E]`` int8 group of each event's user: 0 train, 1 valid, 2 test (as `comirec_split`)."""
    distinct, user_index = np.unique(users, return_inverse=True)
    n_valid = round(distinct.size * valid_share)
    n_test = round(distinct.size * test_share)
    order = np.random.default_rng(seed).permutation(distinct.size)
    group = np.zeros(distinct.size, dtype=np.int8)
    group[order[:n_valid]] = 1
    group[order[n_valid : n_valid + n_test]] = 2
    return group[user_index]


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
