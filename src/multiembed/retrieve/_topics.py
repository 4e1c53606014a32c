"""Explicit interests at request time: which followed topics to use, and the relevance filter."""

from __future__ import annotations

import numpy as np

from multiembed.index import ItemTopics
from multiembed.retrieve._checks import describe, non_negative_int
from multiembed.retrieve.errors import RetrievalInputError


def sample_topics(followed: np.ndarray, k_ex: int, *, seed: int, user: int) -> np.ndarray:
    """Sample `k_ex` of a user's followed topics, reproducibly (Section 3.5).

    The generator is ``numpy.random.default_rng([seed, user])`` (a
    ``SeedSequence`` over the pair), so the same (seed, user) always gives the
    same topics, and different users get independent draws. To rotate topics
    over time, derive `seed` from the day or the session. Topics are
    de-duplicated and sorted first, so the input order does not matter; when the
    user follows at most `k_ex` topics, all of them are returned (in sampled
    order, which is also the round-robin order).

    Args:
        followed: ``[T]`` int topic ids (may be empty).
        k_ex: number of topics to use.
        seed: non-negative base seed.
        user: non-negative user id.

    Returns:
        ``[min(k_ex, T')]`` int64 distinct topics, ``T'`` the distinct followed topics.

    >>> a = sample_topics(np.array([4, 8, 15, 16, 23, 42]), 3, seed=0, user=7)
    >>> b = sample_topics(np.array([42, 23, 16, 15, 8, 4]), 3, seed=0, user=7)
    >>> a.tolist() == b.tolist(), len(set(a.tolist()))
    (True, 3)
    >>> sorted(sample_topics(np.array([5, 3, 5]), 5, seed=0, user=1).tolist())
    [3, 5]
    """
    where = "sample_topics"
    if (
        not isinstance(followed, np.ndarray)
        or followed.ndim != 1
        or (followed.size and not np.issubdtype(followed.dtype, np.integer))
    ):
        raise RetrievalInputError(where, "followed", "a [T] int array", describe(followed))
    k_ex = non_negative_int(where, "k_ex", k_ex)
    seed = non_negative_int(where, "seed", seed)
    user = non_negative_int(where, "user", user)
    topics = np.unique(followed.astype(np.int64))
    rng = np.random.default_rng([seed, user])
    return rng.choice(topics, size=min(k_ex, topics.size), replace=False)


def relevance_filter(candidate_ids: np.ndarray, topic: int, item_topics: ItemTopics) -> np.ndarray:
    """Which candidates of a topic-conditioned embedding carry that topic (Section 3.3.3).

    The paper's guardrail for condition relevance: a candidate retrieved for
    followed topic ``t`` is kept only if the item-to-topic signal says the item
    carries ``t``.

    Args:
        candidate_ids: ``[N]`` int64 item ids retrieved for `topic`.
        topic: the topic the embedding was conditioned on.
        item_topics: item-to-topic membership.

    Returns:
        ``[N]`` bool, True to keep.

    >>> it = ItemTopics.from_pairs(np.array([1, 2, 3]), np.array([7, 7, 8]))
    >>> relevance_filter(np.array([3, 2, 9, 1]), 7, it).tolist()
    [False, True, False, True]
    """
    if not isinstance(candidate_ids, np.ndarray) or candidate_ids.ndim != 1:
        raise RetrievalInputError(
            "relevance_filter", "candidate_ids", "a [N] int array", describe(candidate_ids)
        )
    return item_topics.contains(candidate_ids, int(topic))


def relevance_filter_rows(
    candidate_ids: np.ndarray, topics: np.ndarray, item_topics: ItemTopics
) -> np.ndarray:
    """`relevance_filter` for the lists of several topic-conditioned embeddings at once.

    Args:
        candidate_ids: ``[T, N]`` int64, row ``t`` retrieved for ``topics[t]``; ``-1``
            padding is allowed and never kept.
        topics: ``[T]`` int topics.
        item_topics: item-to-topic membership.

    Returns:
        ``[T, N]`` bool, True to keep.

    >>> it = ItemTopics.from_pairs(np.array([1, 2, 3]), np.array([7, 7, 8]))
    >>> relevance_filter_rows(np.array([[3, 2, -1], [3, 1, 9]]), np.array([7, 8]), it).tolist()
    [[False, True, False], [True, False, False]]
    """
    if (
        not isinstance(candidate_ids, np.ndarray)
        or candidate_ids.ndim != 2
        or not isinstance(topics, np.ndarray)
        or topics.shape != candidate_ids.shape[:1]
    ):
        raise RetrievalInputError(
            "relevance_filter_rows",
            "candidate_ids, topics",
            "a [T, N] int array and [T] topics",
            f"{describe(candidate_ids)}, {describe(topics)}",
        )
    keep = np.zeros(candidate_ids.shape, dtype=bool)
    starts, stops = item_topics.blocks(topics)  # one lookup for every row's topic
    for t, (start, stop) in enumerate(zip(starts.tolist(), stops.tolist(), strict=True)):
        if stop > start:
            members = item_topics.items[start:stop]  # ascending
            pos = np.searchsorted(members, candidate_ids[t])
            np.minimum(pos, members.size - 1, out=pos)
            np.equal(members[pos], candidate_ids[t], out=keep[t])
    return keep
