"""sample_topics (reproducible K_ex sampling) and relevance_filter (Section 3.3.3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.index import ItemTopics
from multiembed.retrieve import (
    RetrievalInputError,
    relevance_filter,
    relevance_filter_rows,
    sample_topics,
)

FAST = settings(max_examples=100, deadline=None)


@FAST
@given(
    followed=st.lists(st.integers(0, 50), max_size=30),
    k_ex=st.integers(0, 8),
    seed=st.integers(0, 2**32),
    user=st.integers(0, 2**62),
)
def test_sample_is_a_reproducible_subset(
    followed: list[int], k_ex: int, seed: int, user: int
) -> None:
    f = np.array(followed, dtype=np.int64)
    got = sample_topics(f, k_ex, seed=seed, user=user)
    distinct = set(followed)
    assert got.dtype == np.int64
    assert got.size == min(k_ex, len(distinct))
    assert len(set(got.tolist())) == got.size
    assert set(got.tolist()) <= distinct
    again = sample_topics(f[::-1].copy(), k_ex, seed=seed, user=user)  # input order irrelevant
    assert again.tolist() == got.tolist()


def test_pinned_draw_and_generator() -> None:
    followed = np.array([3, 14, 15, 92, 65, 35, 89, 79])
    got = sample_topics(followed, 5, seed=42, user=1001)
    rng = np.random.default_rng([42, 1001])  # the documented derivation
    assert got.tolist() == rng.choice(np.unique(followed), size=5, replace=False).tolist()


def test_users_and_seeds_draw_differently() -> None:
    followed = np.arange(20)
    draws = {tuple(sample_topics(followed, 5, seed=0, user=u).tolist()) for u in range(50)}
    assert len(draws) > 40
    assert (
        sample_topics(followed, 5, seed=1, user=3).tolist()
        != sample_topics(followed, 5, seed=2, user=3).tolist()
    )


def test_all_topics_when_fewer_and_none_when_empty() -> None:
    assert sorted(sample_topics(np.array([7, 2]), 5, seed=0, user=0).tolist()) == [2, 7]
    assert sample_topics(np.zeros(0, dtype=np.int64), 5, seed=0, user=0).size == 0
    assert sample_topics(np.array([], dtype=float), 5, seed=0, user=0).size == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_topics(np.array([1.5]), 2, seed=0, user=0), r"a \[T\] int array"),
        (lambda: sample_topics(np.array([1]), -1, seed=0, user=0), "k_ex must be a non-negative"),
        (lambda: sample_topics(np.array([1]), 1, seed=0, user=-5), "user must be a non-negative"),
    ],
)
def test_sample_errors(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RetrievalInputError, match=message):
        call()


@FAST
@given(
    pairs=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), max_size=60),
    candidates=st.lists(st.integers(0, 35), max_size=40),
    topic=st.integers(0, 6),
)
def test_relevance_filter_matches_naive(
    pairs: list[tuple[int, int]], candidates: list[int], topic: int
) -> None:
    items = np.array([p[0] for p in pairs], dtype=np.int64)
    topics = np.array([p[1] for p in pairs], dtype=np.int64)
    it = ItemTopics.from_pairs(items, topics)
    got = relevance_filter(np.array(candidates, dtype=np.int64), topic, it)
    assert got.tolist() == [(c, topic) in set(pairs) for c in candidates]


@FAST
@given(
    pairs=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 5)), max_size=60),
    rows=st.lists(
        st.tuples(st.integers(0, 7), st.lists(st.integers(-1, 35), min_size=6, max_size=6)),
        max_size=5,
    ),
)
def test_relevance_filter_rows_matches_naive(
    pairs: list[tuple[int, int]], rows: list[tuple[int, list[int]]]
) -> None:
    """Row t keeps exactly the candidates that carry topics[t]; -1 padding never."""
    it = ItemTopics.from_pairs(
        np.array([p[0] for p in pairs], dtype=np.int64),
        np.array([p[1] for p in pairs], dtype=np.int64),
    )
    topics = np.array([t for t, _ in rows], dtype=np.int64)
    ids = np.array([c for _, c in rows], dtype=np.int64).reshape(len(rows), 6)
    got = relevance_filter_rows(ids, topics, it)
    assert got.tolist() == [[(c, t) in set(pairs) for c in cands] for t, cands in rows]
    for t in range(len(rows)):  # the same as the one-list filter
        real = ids[t] >= 0
        assert got[t][real].tolist() == relevance_filter(ids[t][real], int(topics[t]), it).tolist()


def test_relevance_filter_rows_error_names_shapes() -> None:
    it = ItemTopics.from_pairs(np.array([1]), np.array([2]))
    with pytest.raises(RetrievalInputError, match=r"\[T, N\] int array and \[T\] topics"):
        relevance_filter_rows(np.array([1, 2]), np.array([2]), it)


def test_one_followed_topic_is_always_served() -> None:
    for user in range(5):
        assert sample_topics(np.array([4]), 3, seed=user, user=user).tolist() == [4]
