"""implicit_queries: the user tower's output as one user's implicit queries, rechecked by a loop."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.retrieve import implicit_queries

FAST = settings(max_examples=100, deadline=None)
VALUES = st.sampled_from([0.0, 1.5, -2.0, np.nan, np.inf, -np.inf])


@FAST
@given(
    rows=st.lists(
        st.tuples(st.lists(VALUES, min_size=3, max_size=3), VALUES, st.booleans()),
        min_size=1,
        max_size=6,
    )
)
def test_a_slot_is_kept_only_when_used_and_finite(
    rows: list[tuple[list[float], float, bool]],
) -> None:
    emb = np.array([r[0] for r in rows])  # [K, 3]
    importance = np.array([r[1] for r in rows])  # [K]
    used = np.array([r[2] for r in rows])  # [K]
    q = implicit_queries(emb, importance, used)
    finite = [all(np.isfinite(v) for v in e) and np.isfinite(w) for e, w, _ in rows]
    kept = [f and u for f, (_, _, u) in zip(finite, rows, strict=True)]
    if not any(kept):
        assert q is None
        return
    assert q is not None
    assert q.embeddings.dtype == np.float32
    assert q.importance.dtype == np.float64
    assert q.slot_mask.dtype == bool
    assert q.slot_mask.tolist() == kept
    for k, (e, w, _) in enumerate(rows):
        want_row = e if finite[k] else [0.0, 0.0, 0.0]
        assert q.embeddings[k].tolist() == want_row
        assert q.importance[k] == (w if finite[k] else 0.0)


def test_values_of_a_two_slot_user() -> None:
    q = implicit_queries(
        np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32),
        np.array([3.0, np.nan], dtype=np.float32),
        np.array([1, 1]),
    )
    assert q is not None
    assert q.embeddings.tolist() == [[np.float32(0.6), np.float32(0.8)], [0.0, 0.0]]
    assert q.importance.tolist() == [3.0, 0.0]
    assert q.slot_mask.tolist() == [True, False]
