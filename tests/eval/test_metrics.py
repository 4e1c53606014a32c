"""Offline metrics against hand-computed values, NumPy loops and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.eval.metrics import (
    CORE,
    NEW,
    NON_CORE,
    SEGMENTS,
    MetricInputError,
    candidate_overlap,
    filtered_positive_ranks,
    hit_rate_at_k,
    interest_coverage,
    max_scores,
    mean_std,
    positive_ranks,
    ranking_metrics,
    served_hits,
    top_n,
    topic_diversity,
    unseen_recall,
    user_segments,
)

DAY = 86_400


# ---------------------------------------------------------------- naive references


def naive_rank(q, mask, corpus, pos, pos_index, ties, allowed=None):
    """The definition, one record at a time, one item at a time."""
    if not mask.any():
        return math.inf

    def score(x):
        return max(float(q[k] @ x) for k in range(q.shape[0]) if mask[k])

    p = score(pos)
    higher = tied = 0
    for c in range(corpus.shape[0]):
        if c == pos_index or (allowed is not None and not allowed[c]):
            continue
        s = score(corpus[c])
        higher += s > p
        tied += s == p
    return higher + (tied if ties == "pessimistic" else tied / 2)


def naive_top(q, mask, items, n, allowed=None):
    scored = []
    for c in range(items.shape[0]):
        if allowed is not None and not allowed[c]:
            continue
        if mask.any():
            scored.append((-max(float(q[k] @ items[c]) for k in range(len(mask)) if mask[k]), c))
    return [c for _, c in sorted(scored)[:n]] + [-1] * max(0, n - len(scored))


def naive_ndcg(ranked, targets, n):
    t = set(targets)
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(ranked[:n]) if i in t)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(len(t), n)))
    return dcg / idcg


def random_world(seed, b=5, k=3, c=40, d=4, integer=False):
    rng = np.random.default_rng(seed)
    if integer:  # small integers: many exact ties
        q = rng.integers(-1, 2, (b, k, d)).astype(np.float64)
        corpus = rng.integers(-1, 2, (c, d)).astype(np.float64)
    else:
        q = rng.standard_normal((b, k, d))
        corpus = rng.standard_normal((c, d))
    mask = rng.random((b, k)) < 0.7
    mask[:, 0] |= ~mask.any(axis=1)
    pos_index = np.where(rng.random(b) < 0.5, rng.integers(0, c, b), -1)
    pos = np.where(
        pos_index[:, None] >= 0, corpus[np.maximum(pos_index, 0)], rng.standard_normal((b, d))
    )
    return q, mask, corpus, pos, pos_index


# ---------------------------------------------------------------- max over embeddings, ranks


def test_max_scores_ignores_masked_slots():
    q = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [5.0, 5.0]]])
    items = np.array([[0.25, 0.5], [1.0, -1.0]])
    mask = np.array([[True, True], [True, False]])
    assert max_scores(q, items, query_mask=mask).tolist() == [[0.5, 1.0], [0.5, -1.0]]
    assert max_scores(q, items, query_mask=np.zeros((2, 2), bool)).tolist() == [[-math.inf] * 2] * 2


def test_rank_of_a_positive_inside_the_corpus_leaves_itself_out():
    q = np.array([[1.0, 0.0]])
    corpus = np.array([[0.9, 0.0], [0.5, 0.0], [0.7, 0.0], [0.1, 0.0]])
    ranks = positive_ranks(q, corpus, corpus[[2]], positive_index=np.array([2]))
    assert ranks.tolist() == [1.0]  # only 0.9 is above 0.7; the positive itself is not a tie
    assert hit_rate_at_k(ranks, (1, 2)) == {1: 0.0, 2: 1.0}


def test_rank_of_a_positive_outside_the_corpus_is_scored_against_it():
    q = np.array([[1.0, 0.0]])
    corpus = np.array([[0.9, 0.0], [0.5, 0.0], [0.7, 0.0], [0.1, 0.0]])
    assert positive_ranks(q, corpus, np.array([[0.6, 0.0]])).tolist() == [2.0]
    assert positive_ranks(q, corpus, np.array([[0.95, 0.0]])).tolist() == [0.0]
    assert positive_ranks(q, corpus, np.array([[0.0, 0.0]])).tolist() == [4.0]


def test_ties_pessimistic_and_average():
    q = np.array([[1.0, 0.0]])
    corpus = np.array([[0.5, 0.0], [0.5, 0.0], [0.9, 0.0], [0.5, 1.0]])
    pos = np.array([[0.5, 0.0]])
    assert positive_ranks(q, corpus, pos).tolist() == [4.0]  # 1 above + 3 tied
    assert positive_ranks(q, corpus, pos, ties="average").tolist() == [2.5]
    # inside the corpus at row 0: one fewer tie
    assert positive_ranks(q, corpus, pos, positive_index=np.array([0])).tolist() == [3.0]
    # a constant scorer gets no credit under the pessimistic rule
    flat = positive_ranks(np.zeros((1, 2)), corpus, pos)
    assert hit_rate_at_k(flat, (1, 3)) == {1: 0.0, 3: 0.0}


def test_max_over_embeddings_with_a_masked_slot():
    q = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]])
    corpus = np.array([[0.0, 0.8], [0.6, 0.0], [-0.9, -0.9]])
    pos = np.array([[0.7, 0.0]])  # scores 0.7 through slot 0
    # used slots 0 and 1: item 0 scores 0.8 (slot 1) > 0.7; item 2 would win only via slot 2
    assert positive_ranks(q, corpus, pos, query_mask=np.array([[True, True, False]])).tolist() == [
        1.0
    ]
    assert positive_ranks(q, corpus, pos).tolist() == [2.0]  # slot 2 used: item 2 scores 1.8
    assert positive_ranks(q, corpus, pos, query_mask=np.zeros((1, 3), bool)).tolist() == [math.inf]


@pytest.mark.parametrize("chunk_size", [1, 7, None])
@pytest.mark.parametrize("ties", ["pessimistic", "average"])
@pytest.mark.parametrize("integer", [False, True])
def test_positive_ranks_match_the_naive_loop(chunk_size, ties, integer):
    q, mask, corpus, pos, pos_index = random_world(1, integer=integer)
    got = positive_ranks(
        q, corpus, pos, query_mask=mask, positive_index=pos_index, ties=ties, chunk_size=chunk_size
    )
    want = [naive_rank(q[b], mask[b], corpus, pos[b], pos_index[b], ties) for b in range(len(q))]
    assert got.tolist() == want


def test_filtered_ranks_hand_example():
    q = np.array([[1.0, 0.0], [1.0, 0.0]])
    corpus = np.array([[0.9, 0.0], [0.8, 0.0], [0.1, 0.0], [0.85, 0.0]])
    corpus_topics = np.array([[1, -1], [2, -1], [2, 3], [3, 1]])
    pos = np.array([[0.5, 0.0], [0.5, 0.0]])
    ranks = filtered_positive_ranks(
        q,
        corpus,
        pos,
        corpus_topics=corpus_topics,
        condition=np.array([2, 1]),
        positive_topics=np.array([[2, -1], [3, -1]]),
    )
    # record 0: only items 1 (0.8) and 2 (0.1) carry topic 2, one is above; record 1: the
    # positive lacks topic 1, so the filter would drop it: a miss
    assert ranks.tolist() == [1.0, math.inf]
    unfiltered = positive_ranks(q, corpus, pos)
    assert unfiltered.tolist() == [3.0, 3.0]


@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_filtered_ranks_match_the_naive_loop(chunk_size):
    q, mask, corpus, pos, pos_index = random_world(2, integer=True)
    rng = np.random.default_rng(3)
    corpus_topics = rng.integers(-1, 4, (corpus.shape[0], 2))
    condition = rng.integers(0, 4, q.shape[0])
    positive_topics = np.where(
        pos_index[:, None] >= 0, corpus_topics[np.maximum(pos_index, 0)], rng.integers(0, 4, (5, 2))
    )
    got = filtered_positive_ranks(
        q,
        corpus,
        pos,
        corpus_topics=corpus_topics,
        condition=condition,
        positive_topics=positive_topics,
        query_mask=mask,
        positive_index=pos_index,
        chunk_size=chunk_size,
    )
    for b in range(q.shape[0]):
        allowed = (corpus_topics == condition[b]).any(axis=1)
        want = naive_rank(q[b], mask[b], corpus, pos[b], pos_index[b], "pessimistic", allowed)
        if condition[b] not in positive_topics[b]:
            want = math.inf
        assert got[b] == want


def test_hit_rate_at_k_hand_values():
    ranks = np.array([0.0, 49.0, 50.0, 99.5, 999.0, math.inf])
    assert hit_rate_at_k(ranks, (50, 100, 1000)) == {50: 2 / 6, 100: 4 / 6, 1000: 5 / 6}
    assert hit_rate_at_k(ranks, 1) == {1: 1 / 6}


@given(
    seed=st.integers(0, 10_000),
    ks=st.lists(st.integers(1, 60), min_size=2, max_size=6, unique=True),
)
@settings(max_examples=25, deadline=None)
def test_hit_rate_is_monotone_in_k(seed, ks):
    q, mask, corpus, pos, pos_index = random_world(seed, integer=seed % 2 == 0)
    ranks = positive_ranks(q, corpus, pos, query_mask=mask, positive_index=pos_index)
    hr = hit_rate_at_k(ranks, sorted(ks))
    values = [hr[k] for k in sorted(ks)]
    assert values == sorted(values)
    assert all(0.0 <= v <= 1.0 for v in values)


@given(seed=st.integers(0, 10_000), ties=st.sampled_from(["pessimistic", "average"]))
@settings(max_examples=25, deadline=None)
def test_corpus_order_does_not_change_ranks(seed, ties):
    q, mask, corpus, pos, pos_index = random_world(seed, integer=seed % 2 == 1)
    perm = np.random.default_rng(seed).permutation(corpus.shape[0])
    inverse = np.argsort(perm)  # new row of each old row
    moved = np.where(pos_index >= 0, inverse[np.maximum(pos_index, 0)], -1)
    a = positive_ranks(q, corpus, pos, query_mask=mask, positive_index=pos_index, ties=ties)
    b = positive_ranks(q, corpus[perm], pos, query_mask=mask, positive_index=moved, ties=ties)
    assert a.tolist() == b.tolist()


def test_rank_errors_say_expected_and_got():
    q = np.zeros((2, 3))
    with pytest.raises(MetricInputError, match=r"positives must be a \[2, 3\] float array, got"):
        positive_ranks(q, np.zeros((4, 3)), np.zeros((1, 3)))
    with pytest.raises(MetricInputError, match=r"corpus positions in \[0, 3\] or -1"):
        positive_ranks(q, np.zeros((4, 3)), np.zeros((2, 3)), positive_index=np.array([0, 4]))
    with pytest.raises(MetricInputError, match="ties must be one of"):
        positive_ranks(q, np.zeros((4, 3)), np.zeros((2, 3)), ties="optimistic")  # type: ignore[arg-type]
    with pytest.raises(MetricInputError, match="finite values, got NaN or inf"):
        positive_ranks(q, np.full((4, 3), np.nan), np.zeros((2, 3)))
    with pytest.raises(MetricInputError, match="ranks must be at least one record"):
        hit_rate_at_k(np.zeros(0), (1,))
    with pytest.raises(MetricInputError, match=r"ks must be positive ints, got \[0\]"):
        hit_rate_at_k(np.zeros(3), (0,))


# ---------------------------------------------------------------- top-N and ComiRec metrics


@pytest.mark.parametrize("chunk_size", [1, 6, None])
@pytest.mark.parametrize("n", [1, 5, 50])
def test_top_n_matches_a_full_sort_with_ties_by_row(chunk_size, n):
    q, mask, items, _, _ = random_world(4, b=6, integer=True)
    mask[5] = False  # a query without a used slot retrieves nothing
    got = top_n(q, items, n, query_mask=mask, chunk_size=chunk_size)
    for b in range(q.shape[0]):
        assert got.positions[b].tolist() == naive_top(q[b], mask[b], items, n)
    assert (got.positions[5] == -1).all()


def test_filtered_top_n_matches_a_full_sort():
    q, mask, items, _, _ = random_world(5, b=4, integer=True)
    topics = np.random.default_rng(5).integers(-1, 3, (items.shape[0], 2))
    condition = np.array([0, 1, 2, 0])
    got = top_n(
        q, items, 30, query_mask=mask, item_topics=topics, condition=condition, chunk_size=9
    )
    for b in range(4):
        allowed = (topics == condition[b]).any(axis=1)
        assert got.positions[b].tolist() == naive_top(q[b], mask[b], items, 30, allowed)


def test_ranking_metrics_hand_values():
    ranked = np.array([[4, 2, 9, 7], [1, 3, 5, -1], [8, 6, 0, 11]])
    targets = [np.array([2, 7, 7]), np.array([6]), np.array([8, 6, 0, 11, 12])]
    m = ranking_metrics(ranked, targets, 4)
    assert m.recall.tolist() == [1.0, 0.0, 0.8]
    assert m.hit_rate.tolist() == [1.0, 0.0, 1.0]
    ideal_2 = 1 + 1 / math.log2(3)
    assert m.ndcg[0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal_2)
    assert m.ndcg[1] == 0.0
    assert m.ndcg[2] == pytest.approx(1.0)  # four hits on top, ideal DCG over min(5, 4)
    at2 = ranking_metrics(ranked, targets, 2)
    assert at2.recall.tolist() == [0.5, 0.0, 0.4]


def test_ranking_metrics_match_the_naive_loop():
    rng = np.random.default_rng(6)
    u, n_items = 30, 25
    ranked = np.stack([rng.permutation(n_items)[:20] for _ in range(u)])
    targets = [rng.integers(0, n_items, rng.integers(1, 8)) for _ in range(u)]
    for n in (5, 20):
        m = ranking_metrics(ranked, targets, n)
        for i in range(u):
            t = set(targets[i].tolist())
            hits = len(t & set(ranked[i, :n].tolist()))
            assert m.recall[i] == pytest.approx(hits / len(t))
            assert m.hit_rate[i] == float(hits > 0)
            assert m.ndcg[i] == pytest.approx(naive_ndcg(ranked[i].tolist(), t, n))


@pytest.mark.parametrize("n", [1, 4, 30])
def test_unseen_recall_matches_the_naive_loop(n):
    """The outside benchmark's definition, one user and one item at a time: score = max
    over used slots, history items out, ties by the smaller item id, targets not in
    the history; NaN for a user left without one."""
    rng = np.random.default_rng(11)
    u, k, d, n_items = 25, 3, 4, 30
    q = rng.normal(size=(u, k, d)).round(1)  # rounded: ties happen
    items = rng.normal(size=(n_items, d)).round(1)
    mask = rng.random((u, k)) < 0.7
    mask[:, 0] = True
    seen = [np.append(rng.integers(0, n_items, rng.integers(0, 12)), -1) for _ in range(u)]
    targets = [rng.integers(0, n_items, rng.integers(1, 6)) for _ in range(u)]
    targets[0] = seen[0][:1] if seen[0].size > 1 else np.array([seen[0][0] + 1])
    seen[0] = np.append(seen[0], targets[0])  # user 0: every target already seen
    got = unseen_recall(q, items, seen, targets, n, query_mask=mask)
    for i in range(u):
        history = {int(x) for x in seen[i] if x >= 0}
        unseen = {int(x) for x in targets[i]} - history
        if not unseen:
            assert math.isnan(got[i])
            continue
        scores = [
            max(float(q[i, j] @ items[c]) for j in range(k) if mask[i, j]) for c in range(n_items)
        ]
        order = sorted(
            (c for c in range(n_items) if c not in history), key=lambda c: (-scores[c], c)
        )
        assert got[i] == pytest.approx(len(unseen & set(order[:n])) / len(unseen)), i
    assert math.isnan(got[0])


def test_ranking_metric_errors():
    with pytest.raises(MetricInputError, match="distinct ids in each row, got a repeated id"):
        ranking_metrics(np.array([[1, 1]]), [np.array([1])], 2)
    with pytest.raises(MetricInputError, match=r"targets\[0\] must be at least one item id"):
        ranking_metrics(np.array([[1, 2]]), [np.array([], dtype=np.int64)], 2)
    with pytest.raises(MetricInputError, match="targets must be 2 arrays"):
        ranking_metrics(np.array([[1], [2]]), [np.array([1])], 1)


def test_served_hits():
    lists = [np.array([5, 3]), np.array([1, 2, 3]), np.zeros(0, np.int64)]
    assert served_hits(lists, np.array([3, 4, 0])).tolist() == [True, False, False]


# ---------------------------------------------------------------- sets, segments, seeds

ITEM_TOPICS = np.array([[0, 1], [1, -1], [2, -1], [3, 0], [-1, -1]])


def test_interest_coverage_hand_values():
    got = interest_coverage(
        [np.array([0, 2]), np.array([3]), np.array([4]), np.array([1, 1])],
        [np.array([1, 4]), np.array([0, 2, 3]), np.array([0]), np.array([], np.int64)],
        ITEM_TOPICS,
    )
    # user 0 wants {0, 1, 2}, gets {1}; user 1 wants {3, 0}, gets all; user 2 has no topic
    assert got[0] == pytest.approx(1 / 3)
    assert got[1] == 1.0
    assert math.isnan(got[2])
    assert got[3] == 0.0


def test_topic_diversity_hand_values():
    got = topic_diversity(
        [np.array([0, 1, 3]), np.array([4]), np.array([2, 2]), np.zeros(0, np.int64)], ITEM_TOPICS
    )
    assert got.tolist() == [3, 0, 1, 0]


def test_candidate_overlap_hand_values_and_empty_sets():
    assert candidate_overlap(np.array([1, 2, 3, 4]), np.array([3, 4, 5, 6])) == 0.5
    assert candidate_overlap(np.array([1, 2]), np.array([2, 2, 1, 9])) == 1.0
    assert candidate_overlap(np.array([1]), np.array([2])) == 0.0
    with pytest.raises(MetricInputError, match="b must be a non-empty candidate set, got an empty"):
        candidate_overlap(np.array([1]), np.zeros(0, np.int64))


def test_user_segments_boundaries():
    ref = 100 * DAY
    # user 0: 5 positives inside 28 days (one exactly at the window's start) -> core
    # user 1: 4 positives inside, one just outside, one at the reference -> non-core
    # user 2: only a negative action before -> non-core (not new: it has history)
    # user 3: only events at or after the reference -> new; user 4: no events -> new
    rows = [
        *[(0, ref - 28 * DAY, True)],
        *[(0, ref - d * DAY, True) for d in (1, 2, 3, 4)],
        *[(1, ref - d * DAY, True) for d in (1, 2, 3, 4)],
        (1, ref - 28 * DAY - 1, True),
        (1, ref, True),
        (2, ref - DAY, False),
        (3, ref, True),
        (3, ref + DAY, True),
    ]
    user, ts, pos = (np.array(c) for c in zip(*rows, strict=True))
    codes = user_segments(
        user,
        ts,
        pos.astype(bool),
        np.array([0, 1, 2, 3, 4]),
        np.full(5, ref),
        min_positives=5,
        window_days=28,
    )
    assert codes.tolist() == [CORE, NON_CORE, NON_CORE, NEW, NEW]
    assert [SEGMENTS[c] for c in codes] == ["core", "non_core", "non_core", "new", "new"]


def test_user_segments_use_each_users_reference_and_reject_repeats():
    user = np.array([0, 0, 1, 1])
    ts = np.array([1, 2, 1, 2]) * DAY
    codes = user_segments(
        user,
        ts,
        np.ones(4, bool),
        np.array([1, 0]),
        np.array([3 * DAY, 2 * DAY]),
        min_positives=2,
        window_days=28,
    )
    assert codes.tolist() == [CORE, NON_CORE]  # user 0's event at 2 days is at its reference
    with pytest.raises(MetricInputError, match="users must be distinct ids, got a repeated id"):
        user_segments(
            user,
            ts,
            np.ones(4, bool),
            np.array([0, 0]),
            np.zeros(2, np.int64),
            min_positives=1,
            window_days=1,
        )


def test_mean_std():
    m = mean_std([0.1, 0.2, 0.3, 0.6])
    assert m.mean == pytest.approx(0.3)
    assert m.std == pytest.approx(np.std([0.1, 0.2, 0.3, 0.6], ddof=1))
    assert m.n == 4
    assert mean_std(np.array([0.7])) == (0.7, 0.0, 1)
    with pytest.raises(MetricInputError, match="values must be finite numbers"):
        mean_std([0.1, math.nan])
    with pytest.raises(MetricInputError, match="values must be a non-empty 1-D sequence"):
        mean_std([])
