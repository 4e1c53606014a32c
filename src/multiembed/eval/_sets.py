"""Set metrics of candidate lists and users: coverage, diversity, overlap, segments, seeds.

Topics of items come as an ``[N, T]`` int matrix with ``-1`` padding (the
``topics`` of `multiembed.nn.features.ItemFeatures`, or the items table's topic
lists), indexed by item id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, NamedTuple

import numpy as np

from multiembed.errors import describe
from multiembed.eval._scores import _int_array
from multiembed.eval.errors import MetricInputError

SECONDS_PER_DAY: Final = 86_400

SEGMENTS: Final = ("core", "non_core", "new")
"""User segments, indexed by the codes `user_segments` returns."""
CORE, NON_CORE, NEW = 0, 1, 2


def _ids(where: str, name: str, ids: object, n_items: int) -> np.ndarray:
    a = _int_array(where, name, ids, (None,), "a 1-D int array of item ids")
    if a.size and (a.min() < 0 or a.max() >= n_items):
        raise MetricInputError(
            where, name, f"item ids in [0, {n_items - 1}]", f"[{a.min()}, {a.max()}]"
        )
    return a


def _topic_set(item_topics: np.ndarray, ids: np.ndarray) -> np.ndarray:
    t = item_topics[ids].ravel()
    return np.unique(t[t >= 0])


def interest_coverage(
    evaluation_items: Sequence[np.ndarray],
    retrieved: Sequence[np.ndarray],
    item_topics: np.ndarray,
) -> np.ndarray:
    """Share of the topics of each user's evaluation engagements found among its candidates.

    ``coverage_u = |topics(E_u) & topics(R_u)| / |topics(E_u)|`` with ``E_u`` the
    items the user engaged with in the evaluation window and ``R_u`` the candidates
    retrieved for it; ``topics(S)`` is the union of the topics of the items in ``S``.

    Args:
        evaluation_items: ``U`` int arrays of item ids engaged with in evaluation.
        retrieved: ``U`` int arrays of retrieved candidate ids.
        item_topics: ``[N, T]`` int topics per item id, ``-1`` pads.

    Returns:
        ``[U]`` float64 in [0, 1]; NaN for a user whose evaluation items carry no topic
        (coverage is undefined there: leave such users out of the mean and count them).

    >>> item_topics = np.array([[0, 1], [1, -1], [2, -1], [-1, -1]])
    >>> interest_coverage([np.array([0, 2]), np.array([3])], [np.array([1]), np.array([0])],
    ...                   item_topics).tolist()
    [0.3333333333333333, nan]
    """
    where = "interest_coverage"
    topics = _int_array(where, "item_topics", item_topics, (None, None))
    if len(evaluation_items) != len(retrieved):
        raise MetricInputError(
            where, "retrieved", f"{len(evaluation_items)} arrays", str(len(retrieved))
        )
    out = np.full(len(retrieved), np.nan)
    for u, (e, r) in enumerate(zip(evaluation_items, retrieved, strict=True)):
        wanted = _topic_set(topics, _ids(where, f"evaluation_items[{u}]", e, topics.shape[0]))
        if wanted.size:
            got = _topic_set(topics, _ids(where, f"retrieved[{u}]", r, topics.shape[0]))
            out[u] = np.isin(wanted, got).sum() / wanted.size
    return out


def topic_diversity(candidates: Sequence[np.ndarray], item_topics: np.ndarray) -> np.ndarray:
    """Number of distinct topics among each candidate list's items.

    Args:
        candidates: ``U`` int arrays of candidate ids.
        item_topics: ``[N, T]`` int topics per item id, ``-1`` pads.

    Returns:
        ``[U]`` int64 counts (0 for an empty list).

    >>> item_topics = np.array([[0, 1], [1, -1], [2, -1]])
    >>> topic_diversity([np.array([0, 1]), np.array([2, 2]), np.array([], int)], item_topics)
    array([2, 1, 0])
    """
    where = "topic_diversity"
    topics = _int_array(where, "item_topics", item_topics, (None, None))
    return np.array(
        [
            _topic_set(topics, _ids(where, f"candidates[{u}]", c, topics.shape[0])).size
            for u, c in enumerate(candidates)
        ],
        dtype=np.int64,
    )


def candidate_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two candidate sets: ``|A & B| / min(|A|, |B|)`` (the overlap coefficient).

    Used for implicit against explicit candidates of one user (Section 3.4: the
    paper reports 3.2% on average). It is symmetric, 1 when the smaller set lies
    inside the larger, and, for sets of equal size (equal budgets), the share of
    either set that the other also retrieved. Repeated ids count once.

    Raises:
        MetricInputError: either set is empty (the overlap is undefined).

    >>> candidate_overlap(np.array([1, 2, 3, 4]), np.array([4, 5]))
    0.5
    """
    where = "candidate_overlap"
    sets = []
    for name, x in (("a", a), ("b", b)):
        arr = _int_array(where, name, x, (None,), "a 1-D int array")
        if arr.size == 0:
            raise MetricInputError(where, name, "a non-empty candidate set", "an empty one")
        sets.append(np.unique(arr))
    return float(np.intersect1d(sets[0], sets[1]).size / min(sets[0].size, sets[1].size))


def user_segments(
    event_user: np.ndarray,
    event_ts: np.ndarray,
    event_positive: np.ndarray,
    users: np.ndarray,
    reference_ts: np.ndarray,
    *,
    min_positives: int,
    window_days: float,
) -> np.ndarray:
    """Segment of each user at a reference time: core, non-core or new.

    Only events strictly before the user's reference time count (the start of
    the evaluation window, or of the user's held-out events):

    - ``NEW``: the user has no engagement at all (any action) before the reference;
    - ``CORE``: at least `min_positives` positive engagements in the `window_days`
      before it (the paper's footnote 4: more than 4 in 28 days, so
      ``min_positives = 5``), i.e. ``reference - window <= ts < reference``;
    - ``NON_CORE``: everyone else.

    Args:
        event_user, event_ts, event_positive: ``[E]`` user, timestamp (seconds) and
            positive flag of every engagement.
        users: ``[U]`` distinct user ids.
        reference_ts: ``[U]`` reference time of each user (seconds; events at it or
            later are ignored).
        min_positives: least positives of a core user.
        window_days: the recency window in days.

    Returns:
        ``[U]`` int8 codes, names in `SEGMENTS`.

    >>> day = 86_400
    >>> user = np.array([0, 0, 0, 1, 1])
    >>> ts = np.array([1, 2, 3, 0, 40]) * day
    >>> pos = np.array([True, True, False, True, True])
    >>> codes = user_segments(user, ts, pos, np.array([0, 1, 2]), np.full(3, 10 * day),
    ...                       min_positives=2, window_days=28)
    >>> [SEGMENTS[c] for c in codes]
    ['core', 'non_core', 'new']
    """
    where = "user_segments"
    eu = _int_array(where, "event_user", event_user, (None,))
    e = eu.size
    et = _int_array(where, "event_ts", event_ts, (e,))
    ep = np.asarray(event_positive)
    if ep.shape != (e,) or ep.dtype != np.bool_:
        raise MetricInputError(where, "event_positive", f"a [{e}] bool array", describe(ep))
    us = _int_array(where, "users", users, (None,))
    u = us.size
    ref = _int_array(where, "reference_ts", reference_ts, (u,))
    if np.unique(us).size != u:
        raise MetricInputError(where, "users", "distinct ids", "a repeated id")
    if isinstance(min_positives, bool) or not isinstance(min_positives, int) or min_positives < 1:
        raise MetricInputError(where, "min_positives", "an int >= 1", repr(min_positives))
    if not (isinstance(window_days, int | float) and 0 < window_days < math.inf):
        raise MetricInputError(where, "window_days", "a positive finite number", repr(window_days))
    window = round(window_days * SECONDS_PER_DAY)

    order = np.argsort(us, kind="stable")
    sorted_users = us[order]
    pos = np.minimum(np.searchsorted(sorted_users, eu), max(u - 1, 0))
    known = (sorted_users[pos] == eu) if u else np.zeros(e, dtype=bool)
    idx = order[pos[known]]  # [E'] user position of each event of a listed user
    ts, positive = et[known], ep[known]
    before = ts < ref[idx]
    recent = before & positive & (ts >= ref[idx] - window)
    any_before = np.bincount(idx[before], minlength=u) > 0
    n_recent = np.bincount(idx[recent], minlength=u)
    codes = np.full(u, NON_CORE, dtype=np.int8)
    codes[n_recent >= min_positives] = CORE
    codes[~any_before] = NEW
    return codes


class MeanStd(NamedTuple):
    """Mean and sample standard deviation over ``n`` values (seeds)."""

    mean: float
    std: float
    n: int


def mean_std(values: Sequence[float] | np.ndarray) -> MeanStd:
    """Mean and standard deviation of one metric over several seeds.

    The standard deviation is the sample one (``ddof = 1``), the usual spread
    reported over a few training seeds; it is 0 for a single value.

    Raises:
        MetricInputError: no values, or a non-finite one.

    >>> mean_std([0.25, 0.5, 0.75])
    MeanStd(mean=0.5, std=0.25, n=3)
    >>> mean_std([0.5])
    MeanStd(mean=0.5, std=0.0, n=1)
    """
    where = "mean_std"
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise MetricInputError(where, "values", "a non-empty 1-D sequence", describe(v))
    if not np.isfinite(v).all():
        raise MetricInputError(where, "values", "finite numbers", str(v.tolist()))
    std = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return MeanStd(float(v.mean()), std, int(v.size))
