"""Scoring with several embeddings per user: max over embeddings, positive ranks, top-n.

The paper's offline protocol (Section 4.1.1, following [3, 12]):

    score(u, i) = max over used slots k of <o_u^k, o_i>
    rank(r)     = #{c in corpus, c != p : score(u, c) > score(u, p)} + ties(r)

with ``p`` the record's one positive. ``ties(r)`` counts the corpus items (other
than ``p``) whose score equals the positive's: all of them under the
``"pessimistic"`` rule (the default: a model earns no credit for scores it does
not separate, so a constant scorer gets HR@K of about K / C, never 1), or half of
them under ``"average"`` (the expected rank when ties are broken at random). The
positive need not be in the corpus: an outside positive is scored against the
ranked corpus items in the same way, as the paper describes.

Everything here is pure NumPy, chunked over the corpus so that at most about
2^24 scores are held at once whatever the corpus size. Shapes: ``B`` queries (users
or records), ``K`` embeddings per query, ``D`` dim, ``C`` corpus items, ``T`` topic
slots (``-1`` pads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np

from multiembed.errors import describe
from multiembed.eval.errors import MetricInputError

TieRule = Literal["pessimistic", "average"]
TIE_RULES: tuple[str, ...] = ("pessimistic", "average")
_CHUNK_ELEMENTS = 1 << 24  # scores held at once (64 MiB in float32)


def _queries(
    where: str, queries: np.ndarray, query_mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``[B, K, D]`` (or ``[B, D]``, read as ``K = 1``) floats and their ``[B, K]`` bool mask."""
    q = np.asarray(queries)
    if q.ndim == 2:
        q = q[:, None, :]
    if q.ndim != 3 or not np.issubdtype(q.dtype, np.floating):
        raise MetricInputError(where, "queries", "a [B, K, D] or [B, D] float array", describe(q))
    b, k, _ = q.shape
    if query_mask is None:
        mask = np.ones((b, k), dtype=bool)
    else:
        mask = np.asarray(query_mask)
        if mask.ndim == 1 and k == 1:
            mask = mask[:, None]
        if mask.shape != (b, k) or mask.dtype != np.bool_:
            raise MetricInputError(where, "query_mask", f"a [{b}, {k}] bool array", describe(mask))
    if not np.isfinite(q[mask]).all():
        raise MetricInputError(where, "queries", "finite values at used slots", "NaN or inf")
    return q, mask


def _items(where: str, name: str, items: np.ndarray, rows: int | None, dim: int) -> np.ndarray:
    x = np.asarray(items)
    if (
        x.ndim != 2
        or x.shape[1] != dim
        or (rows is not None and x.shape[0] != rows)
        or not np.issubdtype(x.dtype, np.floating)
    ):
        shape = f"[{'N' if rows is None else rows}, {dim}]"
        raise MetricInputError(where, name, f"a {shape} float array", describe(x))
    if not np.isfinite(x).all():
        raise MetricInputError(where, name, "finite values", "NaN or inf")
    return x


def _int_array(
    where: str, name: str, x: object, shape: tuple[int | None, ...], expected: str = ""
) -> np.ndarray:
    """`x` as an int64 array of `shape` (``None``: any size); else a `MetricInputError`
    expecting `expected` (default: ``"a [<shape>] int array"``)."""
    a = np.asarray(x)
    ok = a.ndim == len(shape) and all(
        s is None or s == n for s, n in zip(shape, a.shape, strict=False)
    )
    if not ok or (a.size and not np.issubdtype(a.dtype, np.integer)):
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise MetricInputError(where, name, expected or f"a [{want}] int array", describe(a))
    return a.astype(np.int64, copy=False)


def _chunk(where: str, chunk_size: int | None, rows: int, c: int) -> int:
    if chunk_size is None:
        return max(1, min(max(c, 1), _CHUNK_ELEMENTS // max(rows, 1)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise MetricInputError(where, "chunk_size", "a positive int or None", repr(chunk_size))
    return chunk_size


def _max_scores(q: np.ndarray, mask: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Unchecked `max_scores`: ``[B, K, D], [B, K], [C, D] -> [B, C]``."""
    b, k, d = q.shape
    s = (q.reshape(b * k, d) @ items.T).reshape(b, k, -1)  # one 2-D product: [B, K, C]
    if k == 1:
        return np.where(mask, s[:, 0, :], -np.inf) if not mask.all() else s[:, 0, :]
    s[~mask] = -np.inf
    return s.max(axis=1)


def max_scores(
    queries: np.ndarray, items: np.ndarray, *, query_mask: np.ndarray | None = None
) -> np.ndarray:
    """Score every item by its best match among each query's used embeddings.

    Args:
        queries: ``[B, K, D]`` user embeddings (``[B, D]`` means ``K = 1``).
        items: ``[C, D]`` item embeddings.
        query_mask: ``[B, K]`` bool, False for an unused slot (ignored); default all used.

    Returns:
        ``[B, C]`` scores ``max_k <q_bk, i_c>`` over used slots; ``-inf`` on a row
        without a used slot.

    >>> q = np.array([[[1.0, 0.0], [0.0, 1.0]]])            # one user, K = 2
    >>> items = np.array([[0.5, 0.2], [0.1, 0.9], [-1.0, -1.0]])
    >>> max_scores(q, items).tolist()
    [[0.5, 0.9, -1.0]]
    >>> max_scores(q, items, query_mask=np.array([[True, False]])).tolist()
    [[0.5, 0.1, -1.0]]
    """
    q, mask = _queries("max_scores", queries, query_mask)
    x = _items("max_scores", "items", items, None, q.shape[2])
    return _max_scores(q, mask, x)


def _positive_scores(q: np.ndarray, mask: np.ndarray, positives: np.ndarray) -> np.ndarray:
    s = np.einsum("bkd,bd->bk", q, positives)  # [B, K]
    return np.where(mask, s, -np.inf).max(axis=1)  # [B]


def _ranks(
    where: str,
    q: np.ndarray,
    mask: np.ndarray,
    corpus: np.ndarray,
    positive_score: np.ndarray,
    positive_index: np.ndarray,
    ties: str,
    chunk: int,
    allowed: Callable[[int, int], np.ndarray] | None = None,
) -> np.ndarray:
    """Count corpus items above / tied with each positive, chunk by chunk."""
    if ties not in TIE_RULES:
        raise MetricInputError(where, "ties", f"one of {list(TIE_RULES)}", repr(ties))
    b, c = q.shape[0], corpus.shape[0]
    higher = np.zeros(b, dtype=np.int64)
    tied = np.zeros(b, dtype=np.int64)
    threshold = positive_score[:, None]  # [B, 1]
    for start in range(0, c, chunk):
        stop = min(start + chunk, c)
        s = _max_scores(q, mask, corpus[start:stop])  # [B, Cc]
        above = s > threshold
        equal = s == threshold
        if allowed is not None:
            keep = allowed(start, stop)  # [B, Cc]
            above &= keep
            equal &= keep
        own = np.flatnonzero((positive_index >= start) & (positive_index < stop))
        above[own, positive_index[own] - start] = False  # the positive never outranks itself
        equal[own, positive_index[own] - start] = False
        higher += above.sum(axis=1)
        tied += equal.sum(axis=1)
    ranks = higher + (tied if ties == "pessimistic" else 0.5 * tied)
    ranks = ranks.astype(np.float64)
    ranks[~mask.any(axis=1)] = np.inf  # no usable embedding: nothing can be retrieved
    return ranks


def _positive_index(where: str, positive_index: object, b: int, c: int) -> np.ndarray:
    if positive_index is None:
        return np.full(b, -1, dtype=np.int64)
    idx = _int_array(where, "positive_index", positive_index, (b,))
    if idx.size and (idx.min() < -1 or idx.max() >= c):
        raise MetricInputError(
            where,
            "positive_index",
            f"corpus positions in [0, {c - 1}] or -1 (outside)",
            f"values in [{idx.min()}, {idx.max()}]",
        )
    return idx


def positive_ranks(
    queries: np.ndarray,
    corpus: np.ndarray,
    positives: np.ndarray,
    *,
    query_mask: np.ndarray | None = None,
    positive_index: np.ndarray | None = None,
    ties: TieRule = "pessimistic",
    chunk_size: int | None = None,
) -> np.ndarray:
    """Rank of each record's one positive among the corpus, max over embeddings (Section 4.1.1).

    ``rank = #{corpus items scoring strictly higher} + ties`` (see the module doc),
    with the positive itself left out of the count when it is in the corpus
    (`positive_index`). A positive outside the corpus is compared with every
    corpus item. HR@K is then ``rank < K`` (`hit_rate_at_k`).

    Args:
        queries: ``[B, K, D]`` user embeddings of the ``B`` records (``[B, D]``: ``K = 1``).
        corpus: ``[C, D]`` corpus item embeddings, any order.
        positives: ``[B, D]`` embedding of each record's positive item.
        query_mask: ``[B, K]`` bool, False for an unused slot; default all used.
        positive_index: ``[B]`` int, the positive's row in `corpus`, ``-1`` when it is
            outside; default all outside.
        ties: ``"pessimistic"`` (every tied corpus item counts) or ``"average"`` (half).
        chunk_size: corpus rows scored at a time; default keeps about 2^24 scores.

    Returns:
        ``[B]`` float64 ranks in ``[0, C]`` (halves under ``"average"``); ``inf`` for a
        record without a used slot, which is a miss at every K.

    Raises:
        MetricInputError: a wrong shape or dtype, a non-finite value, a bad index or rule.

    >>> q = np.array([[[1.0, 0.0], [0.0, 1.0]]])              # one record, K = 2
    >>> corpus = np.array([[0.9, 0.0], [0.0, 0.6], [0.2, 0.2], [0.7, 0.0]])
    >>> positive_ranks(q, corpus, np.array([[0.7, 0.0]])).tolist()   # outside: 0.9 > 0.7 = 0.7
    [2.0]
    >>> positive_ranks(q, corpus, np.array([[0.7, 0.0]]), positive_index=np.array([3])).tolist()
    [1.0]
    >>> positive_ranks(q, corpus, np.array([[0.7, 0.0]]), ties="average").tolist()
    [1.5]
    """
    where = "positive_ranks"
    q, mask = _queries(where, queries, query_mask)
    b, _, d = q.shape
    x = _items(where, "corpus", corpus, None, d)
    pos = _items(where, "positives", positives, b, d)
    idx = _positive_index(where, positive_index, b, x.shape[0])
    chunk = _chunk(where, chunk_size, q.shape[0] * q.shape[1], x.shape[0])
    return _ranks(where, q, mask, x, _positive_scores(q, mask, pos), idx, ties, chunk)


def filtered_positive_ranks(
    queries: np.ndarray,
    corpus: np.ndarray,
    positives: np.ndarray,
    *,
    corpus_topics: np.ndarray,
    condition: np.ndarray,
    positive_topics: np.ndarray,
    query_mask: np.ndarray | None = None,
    positive_index: np.ndarray | None = None,
    ties: TieRule = "pessimistic",
    chunk_size: int | None = None,
) -> np.ndarray:
    """Positive ranks after the explicit relevance post-filter (Table 2's filtered HR).

    Serving keeps a candidate of a topic-conditioned embedding only if the item
    carries the condition topic (Section 3.3.3). Offline, record ``b`` conditioned
    on topic ``condition[b]``:

    - the ranking is that of `positive_ranks` restricted to corpus items carrying
      ``condition[b]`` (the others are filtered out and never outrank the positive);
    - a positive that does not carry ``condition[b]`` would itself be filtered out,
      so it can never be served: its rank is ``inf`` (a miss at every K). Ranking it
      among the filtered items anyway would credit a hit the served list cannot
      contain.

    Args:
        queries, corpus, positives, query_mask, positive_index, ties, chunk_size: as in
            `positive_ranks` (``queries`` is usually ``[B, D]``, one conditioned
            embedding per record).
        corpus_topics: ``[C, T]`` int topics of each corpus item, ``-1`` pads.
        condition: ``[B]`` int topic each record is conditioned on (``>= 0``).
        positive_topics: ``[B, T']`` int topics of each record's positive, ``-1`` pads.

    Returns:
        ``[B]`` float64 ranks among the corpus items carrying the condition; ``inf`` where
        the positive lacks the condition or the record has no used slot.

    >>> q = np.array([[1.0, 0.0]])
    >>> corpus = np.array([[0.9, 0.0], [0.8, 0.0], [0.1, 0.0]])
    >>> corpus_topics = np.array([[1, -1], [2, -1], [2, 3]])
    >>> filtered_positive_ranks(q, corpus, np.array([[0.5, 0.0]]), corpus_topics=corpus_topics,
    ...     condition=np.array([2]), positive_topics=np.array([[2]])).tolist()   # only 0.8 above
    [1.0]
    >>> filtered_positive_ranks(q, corpus, np.array([[0.5, 0.0]]), corpus_topics=corpus_topics,
    ...     condition=np.array([2]), positive_topics=np.array([[1]])).tolist()   # filtered out
    [inf]
    """
    where = "filtered_positive_ranks"
    q, mask = _queries(where, queries, query_mask)
    b, _, d = q.shape
    x = _items(where, "corpus", corpus, None, d)
    c = x.shape[0]
    pos = _items(where, "positives", positives, b, d)
    idx = _positive_index(where, positive_index, b, c)
    ct = _int_array(where, "corpus_topics", corpus_topics, (c, None))
    cond = _int_array(where, "condition", condition, (b,))
    if cond.size and cond.min() < 0:
        raise MetricInputError(where, "condition", "topics >= 0", f"minimum {cond.min()}")
    pt = _int_array(where, "positive_topics", positive_topics, (b, None))
    carries = (pt == cond[:, None]).any(axis=1)  # [B]
    chunk = _chunk(where, chunk_size, b * max(q.shape[1], ct.shape[1], 1), c)

    def allowed(start: int, stop: int) -> np.ndarray:
        return (ct[start:stop][None, :, :] == cond[:, None, None]).any(axis=2)  # [B, Cc]

    ranks = _ranks(where, q, mask, x, _positive_scores(q, mask, pos), idx, ties, chunk, allowed)
    ranks[~carries] = np.inf
    return ranks


class TopN(NamedTuple):
    """Best ``n`` items per query, best first.

    Attributes:
        positions: ``[B, n]`` int64 rows of the scored item matrix; ``-1`` pads a row that
            has fewer than ``n`` items (``n > C``) or no used slot.
        scores: ``[B, n]`` their scores, ``-inf`` at padding.
    """

    positions: np.ndarray
    scores: np.ndarray


def _sort_rows(pos: np.ndarray, top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, ties by smaller position.

    A plain (unstable) sort first, as ties are rare among real scores; only rows
    where two equal scores end up adjacent are sorted again on both keys.
    """
    order = np.argsort(-top, axis=1)
    pos, top = np.take_along_axis(pos, order, axis=1), np.take_along_axis(top, order, axis=1)
    tied = np.flatnonzero((top[:, 1:] == top[:, :-1]).any(axis=1))
    if tied.size:
        again = np.lexsort((pos[tied], -top[tied]), axis=1)
        pos[tied] = np.take_along_axis(pos[tied], again, axis=1)
        top[tied] = np.take_along_axis(top[tied], again, axis=1)
    return pos, top


def _top_rows(s: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``min(n, C)`` positions of each row of ``s [B, C]``, ties by smaller position."""
    b, c = s.shape
    kk = min(n, c)
    if kk < c:
        pos = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # [B, kk], unordered
        kth = np.take_along_axis(s, pos, axis=1).min(axis=1)  # [B]
        # argpartition keeps an arbitrary subset of the items tied with the k-th score;
        # rebuild those rows so that the smallest positions win. (A tie at -inf is
        # padding, dropped later, so those rows need no rebuilding.)
        crowded = ((s >= kth[:, None]).sum(axis=1) > kk) & np.isfinite(kth)
        for r in np.flatnonzero(crowded):
            above = np.flatnonzero(s[r] > kth[r])
            equal = np.flatnonzero(s[r] == kth[r])[: kk - above.size]
            pos[r] = np.concatenate([above, equal])
    else:
        pos = np.broadcast_to(np.arange(c), (b, c))
    return _sort_rows(pos, np.take_along_axis(s, pos, axis=1))


def top_n(
    queries: np.ndarray,
    items: np.ndarray,
    n: int,
    *,
    query_mask: np.ndarray | None = None,
    item_topics: np.ndarray | None = None,
    condition: np.ndarray | None = None,
    chunk_size: int | None = None,
) -> TopN:
    """Exact top-``n`` items per query by max over its used embeddings (ComiRec's retrieval).

    Ties are broken by the smaller row of `items`, so the result is deterministic
    and matches `multiembed.index.ExactIndex` on id-sorted items. Chunked over the
    items: each chunk's top ``n`` is merged into the running best.

    Args:
        queries: ``[B, K, D]`` (or ``[B, D]``) user embeddings.
        items: ``[C, D]`` item embeddings.
        n: how many to return.
        query_mask: ``[B, K]`` bool, False for an unused slot.
        item_topics: ``[C, T]`` int topics of each item (``-1`` pads), with `condition`:
            the relevance post-filter, only items carrying ``condition[b]`` are
            retrieved for query ``b`` (rows may then be padded).
        condition: ``[B]`` int topic of each query (``>= 0``); requires `item_topics`.
        chunk_size: item rows scored at a time.

    Returns:
        `TopN` of shape ``[B, n]``.

    >>> q = np.array([[1.0, 0.0], [0.0, 0.0]])        # the second query scores 0 everywhere
    >>> items = np.array([[0.1, 0.0], [0.9, 0.0], [0.5, 0.0]])
    >>> top_n(q, items, 2).positions.tolist()                        # ties by smaller row
    [[1, 2], [0, 1]]
    >>> top_n(q, items, 4, query_mask=np.array([[True], [False]])).positions.tolist()
    [[1, 2, 0, -1], [-1, -1, -1, -1]]
    >>> topics = np.array([[3], [4], [3]])
    >>> top_n(q, items, 2, item_topics=topics, condition=np.array([3, 4])).positions.tolist()
    [[2, 0], [1, -1]]
    """
    where = "top_n"
    q, mask = _queries(where, queries, query_mask)
    b, k, d = q.shape
    x = _items(where, "items", items, None, d)
    n = MetricInputError.check_int(where, "n", n)
    c = x.shape[0]
    if (item_topics is None) != (condition is None):
        raise MetricInputError(
            where, "item_topics, condition", "both or neither", "only one of them"
        )
    ct = cond = None
    if item_topics is not None:
        ct = _int_array(where, "item_topics", item_topics, (c, None))
        cond = _int_array(where, "condition", condition, (b,))
    chunk = _chunk(where, chunk_size, b * max(k, 0 if ct is None else ct.shape[1], 1), c)
    best = np.full((b, 0), -1, dtype=np.int64)
    best_s = np.full((b, 0), -np.inf, dtype=np.result_type(q.dtype, x.dtype))
    for start in range(0, c, chunk):
        stop = min(start + chunk, c)
        s = _max_scores(q, mask, x[start:stop])  # [B, Cc]
        if ct is not None and cond is not None:
            s[~(ct[start:stop][None, :, :] == cond[:, None, None]).any(axis=2)] = -np.inf
        pos, top = _top_rows(s, n)
        if best.shape[1] == 0:
            best, best_s = pos + start, top
        else:
            cand, cand_s = _sort_rows(
                np.concatenate([best, pos + start], axis=1),
                np.concatenate([best_s, top], axis=1),
            )
            best, best_s = cand[:, :n], cand_s[:, :n]
    index = np.full((b, n), -1, dtype=np.int64)
    scores = np.full((b, n), -np.inf, dtype=best_s.dtype)
    index[:, : best.shape[1]] = best
    scores[:, : best.shape[1]] = best_s
    index[~np.isfinite(scores)] = -1  # a row without a used slot retrieves nothing
    return TopN(index, scores)
