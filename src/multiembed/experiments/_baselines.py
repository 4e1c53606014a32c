"""Non-neural baselines of the benchmark and the one ranking path every model goes through.

Every model is a `Scoring`: per-user query vectors and item vectors with
``score(u, c) = max over used k of <queries[u, k], items[c]>`` (the library's
`top_n`), so the two-tower models, most-popular and EASE are ranked, tie-broken
and history-filtered by the same code (`rank_unseen`).

- most popular: one query ``[1]`` per user and items ``[count_c]``, the training
  users' positive engagements with ``c``;
- EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019)::

      P = (X^T X + lambda I)^-1,    B = I - P diag(1 / diag P)      (so diag B = 0)
      score(u, .) = x_u B

  with ``X [U_train, M]`` the binary matrix of the training users' positive items
  and ``x_u [M]`` the user's positive history items: a query ``x_u`` against the
  items ``B^T``. ``B`` is dense ``[M, M]``: float64 up to `FLOAT64_ITEMS` items,
  float32 above (a 15 000-item matrix is 0.9 GB), and at most `EASE_MAX_ITEMS`
  items, the most popular ones, are modelled (the others are never retrieved).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from multiembed.eval.metrics import drop_seen, top_n

EASE_LAMBDA = 500.0
"""EASE's L2 weight lambda (Steck 2019 uses a few hundred on MovieLens-sized data)."""
EASE_MAX_ITEMS = 15_000
"""The most items EASE models (its dense ``[M, M]`` inverse must fit memory)."""
FLOAT64_ITEMS = 8_192
"""Above this many items, EASE is computed in float32 (half the memory)."""
_GRAM_USERS = 1024  # training users per block of X^T X

Queries = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Rows ``[b]`` of the user table -> queries ``[b, K, D]`` and their ``[b, K]`` bool mask."""


class Scoring(NamedTuple):
    """What a model ranks by: ``score(u, c) = max_k <queries(u)[k], items[c]>``.

    Attributes:
        queries: builds the queries of a block of users (so that a large query
            matrix, e.g. EASE's ``[U, M]`` histories, is never held whole).
        items: ``[C, D]`` float item vectors.
        item_ids: ``[C]`` int64 the item id of each row of `items`.
    """

    queries: Queries
    items: np.ndarray
    item_ids: np.ndarray


def rank_unseen(
    scoring: Scoring, seen: Sequence[np.ndarray], n: int, *, batch_size: int = 256
) -> np.ndarray:
    """The top-`n` item ids of every user, best first, with the user's seen items excluded.

    Ties go to the smaller item row (`top_n`); each block over-fetches ``n`` plus
    its largest seen set, so excluding never shortens a list that had enough items.

    Args:
        scoring: the model's `Scoring`.
        seen: ``U`` int arrays, each user's items to exclude.
        n: list length.
        batch_size: users ranked at a time.

    Returns:
        ``[U, n]`` int64 item ids, ``-1`` pads.

    >>> s = mostpop_scoring(np.array([5, 9, 0, 7]))
    >>> rank_unseen(s, [np.array([1]), np.array([], dtype=np.int64)], 3).tolist()
    [[3, 0, 2], [1, 3, 0]]
    """
    u = len(seen)
    out = np.full((u, n), -1, dtype=np.int64)
    for start in range(0, u, batch_size):
        stop = min(start + batch_size, u)
        block = list(seen[start:stop])
        extra = max((np.asarray(s).size for s in block), default=0)
        queries, mask = scoring.queries(np.arange(start, stop))
        top = top_n(queries, scoring.items, n + extra, query_mask=mask)
        ids = np.where(top.positions >= 0, scoring.item_ids[np.maximum(top.positions, 0)], -1)
        out[start:stop] = drop_seen(ids, block, n)
    return out


def embedding_scoring(
    user_embeddings: np.ndarray, slot_mask: np.ndarray, item_embeddings: np.ndarray
) -> Scoring:
    """A two-tower model: ``[U, K, D]`` user embeddings, ``[U, K]`` mask, ``[N, D]`` items."""

    def queries(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return user_embeddings[rows], slot_mask[rows]

    return Scoring(queries, item_embeddings, np.arange(item_embeddings.shape[0], dtype=np.int64))


def mostpop_scoring(counts: np.ndarray) -> Scoring:
    """Most popular: every user ranks the items by ``[N]`` training positive counts."""

    def queries(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((rows.size, 1, 1)), np.ones((rows.size, 1), dtype=bool)

    items = np.asarray(counts, dtype=np.float64)[:, None]  # [N, 1]
    return Scoring(queries, items, np.arange(items.shape[0], dtype=np.int64))


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """EASE's item-item weights from the Gram matrix ``G = X^T X`` (Steck 2019, Eq. 8).

    ``P = (G + lam I)^-1`` and ``B = I - P diag(1 / diag P)``, i.e.
    ``B_ij = -P_ij / P_jj`` off the diagonal and ``B_jj = 0``.

    Args:
        gram: ``[M, M]`` float ``X^T X`` (its dtype is kept).
        lam: the L2 weight lambda, > 0.

    Returns:
        ``[M, M]`` B, in the dtype of `gram`.

    >>> ease_weights(np.array([[1.0, 1.0], [1.0, 1.0]]), 1.0).tolist()
    [[0.0, 0.5], [0.5, 0.0]]
    """
    if not lam > 0:
        raise ValueError(f"ease_weights: expected lam > 0, got {lam}")
    g = np.array(gram, copy=True)
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    del g
    p /= -np.diag(p)[None, :]  # column j divided by -P_jj
    np.fill_diagonal(p, 0.0)
    return p


class Ease(NamedTuple):
    """A fitted EASE model: the modelled item ids ``[M]`` and their weights ``B [M, M]``."""

    item_ids: np.ndarray
    weights: np.ndarray


def fit_ease(
    user: np.ndarray,
    item: np.ndarray,
    n_items: int,
    *,
    lam: float = EASE_LAMBDA,
    max_items: int = EASE_MAX_ITEMS,
) -> Ease:
    """Fit EASE on the training users' positive ``(user, item)`` events ``[E]`` (repeats once).

    All `n_items` items are modelled when they are at most `max_items`;
    otherwise the `max_items` with the most training users (ties: smaller id).
    """
    codes = np.unique(np.asarray(user, np.int64) * n_items + np.asarray(item, np.int64))
    pairs = np.stack([codes // n_items, codes % n_items])  # [2, P] distinct (user, item)
    if n_items <= max_items:
        kept = np.arange(n_items, dtype=np.int64)
    else:
        users_of = np.bincount(pairs[1], minlength=n_items)
        kept = np.sort(np.lexsort((np.arange(n_items), -users_of))[:max_items])
    column = np.full(n_items, -1, dtype=np.int64)
    column[kept] = np.arange(kept.size)
    pairs = pairs[:, column[pairs[1]] >= 0]
    dtype: type[np.floating] = np.float64 if kept.size <= FLOAT64_ITEMS else np.float32
    gram = _gram(pairs[0], column[pairs[1]], kept.size, dtype)
    return Ease(kept, ease_weights(gram, lam))


def _gram(user: np.ndarray, column: np.ndarray, m: int, dtype: type[np.floating]) -> np.ndarray:
    """``X^T X [M, M]`` of the binary matrix with a 1 at each distinct ``(user, column)``.

    Built from blocks of users, each over only the columns its users touch.
    """
    gram: np.ndarray = np.zeros((m, m), dtype=dtype)
    users, row = np.unique(user, return_inverse=True)
    for start in range(0, users.size, _GRAM_USERS):
        sel = (row >= start) & (row < start + _GRAM_USERS)
        cols, local = np.unique(column[sel], return_inverse=True)
        x: np.ndarray = np.zeros((min(_GRAM_USERS, users.size - start), cols.size), dtype)
        x[row[sel] - start, local] = 1.0
        gram[np.ix_(cols, cols)] += x.T @ x
    return gram


def ease_scoring(model: Ease, liked: Sequence[np.ndarray], n_items: int) -> Scoring:
    """EASE's `Scoring`: each user's query is its binary ``[M]`` row of `liked` items."""
    column = np.full(n_items, -1, dtype=np.int64)
    column[model.item_ids] = np.arange(model.item_ids.size)
    m = model.item_ids.size

    def queries(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.zeros((rows.size, 1, m), dtype=model.weights.dtype)  # [b, 1, M]
        for i, r in enumerate(rows):
            c = column[np.asarray(liked[r], dtype=np.int64)]
            x[i, 0, c[c >= 0]] = 1.0
        return x, np.ones((rows.size, 1), dtype=bool)

    return Scoring(queries, model.weights.T, model.item_ids)  # <x_u, B[:, c]> = (x_u B)_c
