"""One request's query embeddings, their checks, and the explicit stand-in.

Without a trained Conditional Retrieval model a followed topic still gets an
explicit list: `explicit_standin` searches the topic with the user's taste, the
importance-weighted mean of the implicit embeddings, or, with no history, with
the topic's centroid (`topic_centroids`). The service and the offline
evaluation both build their explicit queries this way, so they serve the same
lists.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from multiembed.index import ItemTopics
from multiembed.retrieve._checks import describe
from multiembed.retrieve.errors import RetrievalInputError

_EPS = 1e-12  # below this a weight sum or norm counts as zero


class ImplicitQueries(NamedTuple):
    """The user tower's implicit interests for one user.

    Attributes:
        embeddings: ``[K_im, D]`` float user embeddings.
        importance: ``[K_im]`` cluster importance ``sum_i b_ij`` (0 for unused slots).
        slot_mask: ``[K_im]`` bool, False for an unused slot.
    """

    embeddings: np.ndarray
    importance: np.ndarray
    slot_mask: np.ndarray


class ExplicitQueries(NamedTuple):
    """Topic-conditioned embeddings for the sampled followed topics.

    Attributes:
        topics: ``[K_ex]`` int topics (from `sample_topics`).
        embeddings: ``[K_ex, D]`` float, row ``i`` conditioned on ``topics[i]``.
    """

    topics: np.ndarray
    embeddings: np.ndarray


def implicit_queries(
    embeddings: np.ndarray, importance: np.ndarray, slot_mask: np.ndarray
) -> ImplicitQueries | None:
    """One user's `ImplicitQueries` from the user tower's output, or None when no slot is usable.

    A slot whose embedding row or importance is not finite is masked out and its
    row and importance set to 0, so it is never searched and no score is NaN.

    Args:
        embeddings: ``[K, D]`` float user embeddings of one user.
        importance: ``[K]`` float cluster importance.
        slot_mask: ``[K]`` the tower's used slots (any dtype that reads as bool).

    Returns:
        `ImplicitQueries` with float32 embeddings, float64 importance and a bool
        mask, or None when no slot is both used and finite.

    >>> q = implicit_queries(np.array([[1.0, 0.0], [np.nan, 1.0]]), np.array([2.0, 1.0]),
    ...                      np.array([True, True]))
    >>> q.slot_mask.tolist(), q.embeddings[1].tolist(), q.importance.tolist()
    ([True, False], [0.0, 0.0], [2.0, 0.0])
    """
    importance = np.asarray(importance, dtype=np.float64)
    finite = np.isfinite(embeddings).all(axis=1) & np.isfinite(importance)  # [K]
    mask = np.asarray(slot_mask, dtype=bool) & finite
    if not mask.any():
        return None
    emb = np.where(finite[:, None], embeddings, 0.0).astype(np.float32)
    return ImplicitQueries(emb, np.where(finite, importance, 0.0), mask)


def check_implicit(q: ImplicitQueries, dim: int) -> None:
    """Raise `RetrievalInputError` unless `q` holds ``[K, dim]``, ``[K]``, ``[K]`` bool."""
    emb, imp, mask = q
    k = emb.shape[0] if isinstance(emb, np.ndarray) and emb.ndim == 2 else -1
    if k < 0 or emb.shape[1] != dim:
        raise RetrievalInputError(
            "plan_request", "implicit.embeddings", f"a [K_im, {dim}] array", describe(emb)
        )
    if not isinstance(imp, np.ndarray) or imp.shape != (k,):
        raise RetrievalInputError(
            "plan_request", "implicit.importance", f"a [{k}] array", describe(imp)
        )
    if not isinstance(mask, np.ndarray) or mask.shape != (k,) or mask.dtype != bool:
        raise RetrievalInputError(
            "plan_request", "implicit.slot_mask", f"a [{k}] bool array", describe(mask)
        )


def check_explicit(q: ExplicitQueries, dim: int, k_ex: int) -> None:
    """Raise `RetrievalInputError` unless `q` holds ``[T <= k_ex]`` topics, ``[T, dim]``."""
    topics, emb = q
    if not isinstance(topics, np.ndarray) or topics.ndim != 1 or topics.size > k_ex:
        raise RetrievalInputError(
            "plan_request", "explicit.topics", f"a [T <= {k_ex}] int array", describe(topics)
        )
    if not isinstance(emb, np.ndarray) or emb.shape != (topics.size, dim):
        raise RetrievalInputError(
            "plan_request", "explicit.embeddings", f"a [{topics.size}, {dim}] array", describe(emb)
        )


def taste(implicit: ImplicitQueries) -> np.ndarray:
    """``[D]`` float32 unit importance-weighted mean of the used implicit embeddings.

    >>> q = ImplicitQueries(np.array([[3.0, 0], [0, 4.0]]), np.array([1.0, 0.0]),
    ...                     np.array([True, True]))
    >>> taste(q).tolist()
    [1.0, 0.0]
    """
    w = implicit.importance * implicit.slot_mask  # [K]
    mean = (w[:, None] * implicit.embeddings).sum(0) / max(float(w.sum()), _EPS)
    mean /= max(float(np.linalg.norm(mean)), _EPS)
    return mean.astype(np.float32)


def explicit_standin(
    topics: np.ndarray, implicit: ImplicitQueries | None, centroids: np.ndarray
) -> ExplicitQueries | None:
    """Explicit queries for `topics` ``[T]`` without a conditional model.

    Every topic is searched with the user's `taste` when there are implicit
    queries, else with its own row of `centroids` ``[n_topics, D]``. Rows that are
    non-finite or all zero (a topic without items) are dropped.

    Returns:
        `ExplicitQueries` of the topics kept, or None when none is.

    >>> c = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    >>> explicit_standin(np.array([0, 1]), None, c).topics.tolist()
    [0]
    """
    if topics.size == 0:
        return None
    if implicit is not None:
        emb = np.repeat(taste(implicit)[None], topics.size, 0)  # [T, D]
    else:
        emb = centroids[topics]
    return finite_queries(topics, emb)


def finite_queries(topics: np.ndarray, embeddings: np.ndarray) -> ExplicitQueries | None:
    """`ExplicitQueries` of the rows of `embeddings` ``[T, D]`` that are finite and not
    all zero (float32, contiguous); None when no row is."""
    keep = np.isfinite(embeddings).all(axis=1) & (np.abs(embeddings).sum(axis=1) > 0)
    if not keep.any():
        return None
    return ExplicitQueries(topics[keep], np.ascontiguousarray(embeddings[keep], dtype=np.float32))


def topic_centroids(item_topics: ItemTopics, vectors: np.ndarray, n_topics: int) -> np.ndarray:
    """``[n_topics, D]`` float32 unit mean of each topic's item vectors (0: no items).

    Args:
        item_topics: the items of each topic (ids index rows of `vectors`).
        vectors: ``[C, D]`` item vectors, row ``i`` for item id ``i``.
        n_topics: topics in the vocabulary.
    """
    out = np.zeros((n_topics, vectors.shape[1]), dtype=np.float32)
    for t in item_topics.topics.tolist():
        if 0 <= t < n_topics:
            mean = vectors[item_topics.members(t)].mean(axis=0)
            norm = float(np.linalg.norm(mean))
            if norm > 0 and np.isfinite(norm):
                out[t] = mean / norm
    return out
