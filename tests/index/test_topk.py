"""`topk_by_score` (the exact top-k every backend is checked against) against a sort."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.index import Hits, topk_by_score
from multiembed.index._hits import top_positions

FAST = settings(max_examples=60, deadline=None)


def reference_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[list, list]:
    """Sort every (score, id) pair: score descending, id ascending; pad with (-inf, -1)."""
    out_ids, out_scores = [], []
    for row in scores:
        pairs = sorted(zip(row.tolist(), ids.tolist(), strict=True), key=lambda p: (-p[0], p[1]))
        pairs = pairs[:k] + [(-np.inf, -1)] * max(0, k - len(pairs))
        out_ids.append([p[1] for p in pairs])
        out_scores.append([p[0] for p in pairs])
    return out_ids, out_scores


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    q=st.integers(1, 4),
    c=st.one_of(st.integers(0, 40), st.integers(1020, 1300)),  # sort and partition paths
    k=st.integers(1, 45),
    levels=st.integers(1, 5),
)
def test_matches_reference_with_many_ties(seed: int, q: int, c: int, k: int, levels: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(q, c)).astype(np.float32)  # few levels: many ties
    ids = np.sort(rng.choice(10_000, size=c, replace=False)).astype(np.int64)
    got = topk_by_score(scores, ids, k)
    want_ids, want_scores = reference_topk(scores, ids, k)
    assert got.ids.tolist() == want_ids
    assert got.scores.tolist() == want_scores


def test_pinned_value() -> None:
    scores = np.array([[0.5, 0.25, 0.5, 1.0, 0.25]], dtype=np.float32)
    got = topk_by_score(scores, np.array([1, 2, 3, 4, 5]), 4)
    assert got.ids.tolist() == [[4, 1, 3, 2]]
    assert got.scores.tolist() == [[1.0, 0.5, 0.5, 0.25]]


def test_row_strips_padding() -> None:
    hits = Hits(np.array([[3, -1], [-1, -1]]), np.array([[0.5, -np.inf], [-np.inf, -np.inf]]))
    assert [r.ids.tolist() for r in hits.rows()] == [[3], []]
    assert hits.row(0).scores.tolist() == [0.5]


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    c=st.one_of(st.integers(0, 40), st.integers(1020, 1300)),  # sort and partition paths
    k=st.integers(1, 1400),
    levels=st.integers(1, 5),
)
def test_top_positions_matches_reference_with_many_ties(
    seed: int, c: int, k: int, levels: int
) -> None:
    """The one-row top-k: positions by score descending, ties by smaller position."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=c).astype(np.float32)  # few levels: many ties
    want = sorted(range(c), key=lambda p: (-float(scores[p]), p))[:k]
    got = top_positions(scores, k)
    assert got.tolist() == want
    assert got.dtype == np.int64


def test_top_positions_pinned_value() -> None:
    scores = np.linspace(0.0, 1.0, 2000, dtype=np.float32)
    scores[[5, 9, 1500]] = scores[1999]  # ties with the best score
    assert top_positions(scores, 5).tolist() == [5, 9, 1500, 1999, 1998]
