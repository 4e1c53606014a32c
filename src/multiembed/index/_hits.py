"""Search results and the exact top-k they are checked against.

`Hits` is what every backend returns for `Q` queries and depth `k`; rows shorter
than `k` (a small index, an exhausted topic, an approximate search that found
fewer) are padded at the end with id ``-1`` and score ``-inf``. Padding is an
internal convention: `Hits.row` and `Hits.rows` strip it, so callers only ever
see real ids as `Ranked` lists.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

PAD_ID = -1
PAD_SCORE = -np.inf
_SORT_BELOW = 1024  # below this many items a full sort beats argpartition + fix-ups


class Ranked(NamedTuple):
    """One ranked list of real hits, best first (no padding).

    Attributes:
        ids: ``[N]`` int64 item ids.
        scores: ``[N]`` float32 inner products, non-increasing.
    """

    ids: np.ndarray
    scores: np.ndarray


class Hits(NamedTuple):
    """Results of a batched search.

    Attributes:
        ids: ``[Q, k]`` int64, best first, ``-1`` padding at the end of short rows.
        scores: ``[Q, k]`` float32 inner products, ``-inf`` at padding.

    >>> h = Hits(np.array([[7, 3, -1]]), np.array([[0.75, 0.5, -np.inf]], dtype=np.float32))
    >>> h.row(0).ids.tolist(), h.row(0).scores.tolist()
    ([7, 3], [0.75, 0.5])
    """

    ids: np.ndarray
    scores: np.ndarray

    def row(self, q: int) -> Ranked:
        """The real hits of query `q`: padding removed."""
        ids = self.ids[q]
        keep = ids != PAD_ID
        return Ranked(ids[keep], self.scores[q][keep])

    def rows(self) -> list[Ranked]:
        """`row(q)` for every query."""
        return [self.row(q) for q in range(self.ids.shape[0])]


def empty_hits(q: int, k: int) -> Hits:
    """``[q, k]`` of padding."""
    return Hits(
        np.full((q, k), PAD_ID, dtype=np.int64), np.full((q, k), PAD_SCORE, dtype=np.float32)
    )


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` best of one row of `scores` ``[C]``, ties broken by smaller position.

    The one-query case of `topk_by_score` without its ``[Q, k]`` bookkeeping
    (a topic block is scanned one query at a time).

    Returns:
        ``[min(k, C)]`` int64 positions, by score descending then position ascending.

    >>> top_positions(np.array([0.1, 0.5, 0.5, 0.9], dtype=np.float32), 3).tolist()
    [3, 1, 2]
    """
    c = scores.shape[0]
    kk = min(k, c)
    if c <= _SORT_BELOW or kk == c:  # one stable sort: ties keep their position order
        return np.argsort(-scores, kind="stable")[:kk]
    if kk == 0:
        return np.zeros(0, dtype=np.int64)
    # the k-th largest value by a value-only partition (about 3x cheaper than argpartition
    # on a large block), then every position at or above it: ties at the k-th value
    # are resolved here, smallest positions first
    kth = np.partition(scores, c - kk)[c - kk]
    pos = np.flatnonzero(scores >= kth)  # [>= kk] ascending
    if pos.size > kk:
        pos = np.concatenate([pos[scores[pos] > kth], pos[scores[pos] == kth]])[:kk]
    return pos[np.lexsort((pos, -scores[pos]))]


def topk_by_score(scores: np.ndarray, ids: np.ndarray, k: int) -> Hits:
    """Exact top-`k` of each row of `scores`, ties broken by smaller id.

    Args:
        scores: ``[Q, C]`` float32 scores of `C` items for `Q` queries.
        ids: ``[C]`` int64 item ids, ascending (so a tie is broken by position).
        k: depth; rows are padded when ``k > C``.

    Returns:
        `Hits` ``[Q, k]``, sorted by score descending then id ascending.

    >>> s = np.array([[0.1, 0.5, 0.5, 0.9]], dtype=np.float32)
    >>> topk_by_score(s, np.array([10, 11, 12, 13]), 3).ids.tolist()
    [[13, 11, 12]]
    """
    q, c = scores.shape
    out = empty_hits(q, k)
    kk = min(k, c)
    if kk == 0:
        return out
    if c <= _SORT_BELOW:  # small blocks: one stable sort (ties keep position = id order)
        pos = np.argsort(-scores, axis=1, kind="stable")[:, :kk]  # [Q, kk]
        out.ids[:, :kk] = ids[pos]
        out.scores[:, :kk] = np.take_along_axis(scores, pos, axis=1)
        return out
    if kk < c:
        pos = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]  # [Q, kk], unordered
        kth = np.take_along_axis(scores, pos, axis=1).min(axis=1)  # [Q]
        # argpartition picks an arbitrary subset of items tied with the k-th score;
        # rebuild such rows so that the smallest ids among the tied ones win.
        tied = (scores >= kth[:, None]).sum(axis=1) > kk
        for r in np.flatnonzero(tied):
            above = np.flatnonzero(scores[r] > kth[r])
            equal = np.flatnonzero(scores[r] == kth[r])[: kk - above.size]
            pos[r] = np.concatenate([above, equal])
    else:
        pos = np.broadcast_to(np.arange(c), (q, c))
    top = np.take_along_axis(scores, pos, axis=1)  # [Q, kk]
    order = np.lexsort((pos, -top), axis=1)  # score descending, then position (= id) ascending
    pos = np.take_along_axis(pos, order, axis=1)
    out.ids[:, :kk] = ids[pos]
    out.scores[:, :kk] = np.take_along_axis(top, order, axis=1)
    return out
