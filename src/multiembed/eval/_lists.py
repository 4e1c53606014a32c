"""Ranked lists and user embeddings under the ComiRec protocol: seen items out, interest spread.

- `drop_seen`: a user's ranked list with the items of its history removed, so
  that the top-N ranks only items the user has not engaged with yet.
- `unseen_recall`: Recall@N of each user over its targets that are not in its
  history, ranking every item but the history's by max over its embeddings: the
  protocol of the outside benchmark (`benchmark/protocol.py` beside the shared splits).
- `interest_cosine`: how alike a user's embeddings are (mean pairwise cosine of
  the used slots): near 1 means the K embeddings collapsed into one interest.

Shapes: ``U`` users, ``N'`` ranked positions, ``K`` embeddings, ``D`` dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from multiembed.errors import describe
from multiembed.eval._ranking import ranking_metrics
from multiembed.eval._scores import _int_array, top_n
from multiembed.eval.errors import MetricInputError


def drop_seen(ranked: np.ndarray, seen: Sequence[np.ndarray], n: int) -> np.ndarray:
    """The first `n` ids of each ranked list that are not among the user's seen items.

    Ranking over-fetched lists (``N' >= n + |seen_u|``) and dropping the seen ids
    gives exactly the top-`n` of the ranking with the seen items excluded, in the
    same order and with the same tie-breaking.

    Args:
        ranked: ``[U, N']`` int item ids, best first, ``-1`` pads.
        seen: ``U`` int arrays of each user's items to exclude (repeats allowed).
        n: length of the lists returned.

    Returns:
        ``[U, n]`` int64 ids in their ranked order, ``-1`` pads where fewer than `n`
        unseen ids were ranked.

    Raises:
        MetricInputError: a malformed `ranked` or `seen`, or ``n < 1``.

    >>> ranked = np.array([[4, 2, 7, 1], [3, 5, -1, -1]])
    >>> drop_seen(ranked, [np.array([2, 9]), np.array([], dtype=np.int64)], 3).tolist()
    [[4, 7, 1], [3, 5, -1]]
    """
    where = "drop_seen"
    n = MetricInputError.check_int(where, "n", n)
    r = _int_array(where, "ranked", ranked, (None, None))
    u = r.shape[0]
    if len(seen) != u:
        raise MetricInputError(where, "seen", f"{u} arrays (one per user)", str(len(seen)))
    items = [_int_array(where, f"seen[{i}]", s, (None,)) for i, s in enumerate(seen)]
    seen_rows = np.repeat(np.arange(u, dtype=np.int64), [a.size for a in items])
    seen_items = np.concatenate([np.zeros(0, dtype=np.int64), *items])
    width = int(max(r.max(initial=0), seen_items.max(initial=0))) + 1
    is_seen = np.isin(np.arange(u)[:, None] * width + r, seen_rows * width + seen_items)  # [U, N']
    keep = (r >= 0) & ~is_seen
    order = np.argsort(~keep, axis=1, kind="stable")  # kept positions first, in ranked order
    kept = np.take_along_axis(r, order, axis=1)[:, :n]
    kept = np.where(np.take_along_axis(keep, order, axis=1)[:, :n], kept, -1)
    out = np.full((u, n), -1, dtype=np.int64)
    out[:, : kept.shape[1]] = kept
    return out


def unseen_recall(
    queries: np.ndarray,
    items: np.ndarray,
    seen: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    n: int,
    *,
    query_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Recall@`n` of each user with its history out of the ranking and out of its targets.

    With ``T_u`` the user's distinct targets not in ``seen_u`` and ``top_u`` the first
    `n` items (rows of `items`) by max over its used embeddings, ``seen_u`` left out
    and ties broken by the smaller row (`top_n`, then `drop_seen`):

        Recall@n(u) = |top_u ∩ T_u| / |T_u|        (NaN when T_u is empty)

    A history item could never be hit here, so it does not count as a target: a user
    who engages only with items already seen has no recall to measure.

    Args:
        queries: ``[U, K, D]`` (or ``[U, D]``) user embeddings.
        items: ``[N, D]`` item embeddings, row ``i`` item id ``i``.
        seen: ``U`` int arrays of each user's history items (``-1`` ignored).
        targets: ``U`` int arrays of each user's target items (repeats count once).
        n: the cut-off.
        query_mask: ``[U, K]`` bool, False for an unused slot.

    Returns:
        ``[U]`` float64 in [0, 1], NaN for a user without an unseen target (leave such
        users out of the mean).

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> items = np.array([[0.9, 0.0], [0.8, 0.1], [0.1, 0.9], [0.0, 0.5]])
    >>> seen = [np.array([0]), np.array([2, 3])]
    >>> unseen_recall(q, items, seen, [np.array([1, 0]), np.array([3])], 1).tolist()
    [1.0, nan]
    """
    where = "unseen_recall"
    n = MetricInputError.check_int(where, "n", n)
    u = len(seen)
    if len(targets) != u:
        raise MetricInputError(where, "targets", f"{u} arrays (one per user)", str(len(targets)))
    history = [_int_array(where, f"seen[{i}]", s, (None,)) for i, s in enumerate(seen)]
    history = [h[h >= 0] for h in history]
    unseen = [
        np.setdiff1d(_int_array(where, f"targets[{i}]", t, (None,)), h)
        for i, (t, h) in enumerate(zip(targets, history, strict=True))
    ]
    out = np.full(u, np.nan)
    rows = np.flatnonzero([t.size > 0 for t in unseen])
    if rows.size == 0:
        return out
    n_items = int(np.asarray(items).shape[0])
    depth = min(n_items, n + max(h.size for h in history))  # n unseen items survive the drop
    q = np.asarray(queries)[rows]
    mask = None if query_mask is None else np.asarray(query_mask)[rows]
    ranked = top_n(q, items, depth, query_mask=mask).positions
    kept = drop_seen(ranked, [history[r] for r in rows], n)
    out[rows] = ranking_metrics(kept, [unseen[r] for r in rows], n).recall
    return out


def interest_cosine(embeddings: np.ndarray, slot_mask: np.ndarray | None = None) -> np.ndarray:
    """Mean pairwise cosine between each user's used embeddings.

    ``cos_u = mean over pairs j != l of used slots of <o_j, o_l> / (|o_j| |o_l|)``;
    a zero embedding has cosine 0 with everything (the NumPy twin of
    `multiembed.nn.functional.mean_pairwise_cosine`, per user).

    Args:
        embeddings: ``[U, K, D]`` float user embeddings.
        slot_mask: ``[U, K]`` bool, False for an unused slot; default all used.

    Returns:
        ``[U]`` float64 in [-1, 1]; NaN for a user with fewer than two used slots
        (leave such users out of the mean).

    Raises:
        MetricInputError: a wrong shape or dtype.

    >>> emb = np.array([[[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]], [[1.0, 0.0], [0.0, 1.0], [0, 0]]])
    >>> mask = np.array([[True, True, False], [True, False, False]])
    >>> interest_cosine(emb, mask).round(4).tolist()
    [0.7071, nan]
    """
    where = "interest_cosine"
    e = np.asarray(embeddings)
    if e.ndim != 3 or not np.issubdtype(e.dtype, np.floating):
        raise MetricInputError(where, "embeddings", "a [U, K, D] float array", describe(e))
    u, k, _ = e.shape
    mask = np.ones((u, k), dtype=bool) if slot_mask is None else np.asarray(slot_mask)
    if mask.shape != (u, k) or mask.dtype != np.bool_:
        raise MetricInputError(where, "slot_mask", f"a [{u}, {k}] bool array", describe(mask))
    e = e.astype(np.float64)
    norm = np.linalg.norm(e, axis=2, keepdims=True)  # [U, K, 1]
    unit = np.divide(e, norm, out=np.zeros_like(e), where=norm > 0)
    cosine = unit @ unit.transpose(0, 2, 1)  # [U, K, K]
    pairs = mask[:, :, None] & mask[:, None, :] & ~np.eye(k, dtype=bool)  # [U, K, K]
    count = pairs.sum(axis=(1, 2))  # [U]
    total = (cosine * pairs).sum(axis=(1, 2))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
