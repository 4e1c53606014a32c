"""Budgets (Section 3.5) against exact-arithmetic loop references, plus properties."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.retrieve import RetrievalInputError, equal_budgets, implicit_budgets

FAST = settings(max_examples=150, deadline=None)


def reference_implicit(importance: list[int], total: int, floor: int) -> list[int]:
    """Water-filling with a floor, then Hamilton rounding, in exact fractions, slot by slot."""
    used = [j for j, w in enumerate(importance) if w > 0]
    out = [0] * len(importance)
    if not used or total == 0:
        return out
    floor = min(floor, total // len(used))
    pinned: list[int] = []
    while True:
        free = [j for j in used if j not in pinned]
        rest = total - floor * len(pinned)
        weight = sum(importance[j] for j in free)
        quota = {j: Fraction(rest * importance[j], weight) for j in free}
        low = [j for j in free if quota[j] < floor]
        if not low:
            break
        pinned += low
    for j in pinned:
        out[j] = floor
    for j in free:
        out[j] = int(quota[j])  # floor of a non-negative fraction
    left = rest - sum(out[j] for j in free)
    by_remainder = sorted(free, key=lambda j: (-(quota[j] - int(quota[j])), -importance[j], j))
    for j in by_remainder[:left]:
        out[j] += 1
    return out


def test_pinned_values() -> None:
    assert implicit_budgets(np.array([0.5, 0.3, 0.2]), 10).tolist() == [5, 3, 2]
    # 7 interests, 583 = the implicit share of 1000 for 7 of 12 embeddings
    imp = np.array([0.35, 0.2, 0.15, 0.12, 0.1, 0.05, 0.03])
    # slot 6: 583 * 0.03 = 17.49 < 20, pinned at 20; the other 563 shared over 0.97:
    # 203.14, 116.08, 87.06, 69.65, 58.04, 29.02 -> floors sum to 562, +1 to slot 3 (0.65)
    assert implicit_budgets(imp, 583, floor=20).tolist() == [203, 116, 87, 70, 58, 29, 20]
    # the floor lifts tail interests, the head shares the rest proportionally
    assert implicit_budgets(np.array([0.9, 0.05, 0.05]), 100, floor=10).tolist() == [80, 10, 10]
    # an infeasible floor is lowered to total // used = 1: slot 2 pinned at 1, then
    # 4 shared as 2.4, 1.6 -> 2 + 1, the spare unit to the larger remainder (slot 1)
    assert implicit_budgets(np.array([3.0, 2.0, 1.0]), 5, floor=4).tolist() == [2, 2, 1]
    # ties in remainder: larger importance first, then smaller slot
    assert implicit_budgets(np.array([1.0, 1.0, 1.0]), 100).tolist() == [34, 33, 33]


def test_unused_slots_get_nothing() -> None:
    imp = np.array([0.4, 0.0, 0.6, 0.2])
    mask = np.array([True, True, True, False])
    assert implicit_budgets(imp, 10, mask=mask, floor=1).tolist() == [4, 0, 6, 0]
    assert implicit_budgets(np.zeros(3), 10).tolist() == [0, 0, 0]
    assert implicit_budgets(imp, 0).tolist() == [0, 0, 0, 0]


@FAST
@given(
    importance=st.lists(st.integers(0, 1000), min_size=1, max_size=9),
    total=st.integers(0, 2000),
    floor=st.integers(0, 300),
)
def test_matches_reference(importance: list[int], total: int, floor: int) -> None:
    got = implicit_budgets(np.array(importance, dtype=np.float64), total, floor=floor)
    assert got.tolist() == reference_implicit(importance, total, floor)


@FAST
@given(
    importance=st.lists(
        st.floats(0.0, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=12
    ),
    total=st.integers(0, 5000),
    floor=st.integers(0, 500),
)
def test_properties_on_arbitrary_floats(importance: list[float], total: int, floor: int) -> None:
    w = np.array(importance)
    got = implicit_budgets(w, total, floor=floor)
    used = w > 0
    assert got.dtype == np.int64
    assert (got[~used] == 0).all()
    if used.any():
        assert got.sum() == total  # exact
        assert (got[used] >= min(floor, total // used.sum())).all()
        heavier = w[:, None] > w[None, :]  # [K, K]: slot a more important than slot b
        assert (got[:, None] >= got[None, :])[heavier].all()  # monotone in importance
    else:
        assert got.sum() == 0


@FAST
@given(k=st.integers(0, 20), total=st.integers(0, 3000))
def test_equal_budgets_reference(k: int, total: int) -> None:
    expected = [total // k + (1 if i < total % k else 0) for i in range(k)]
    got = equal_budgets(k, total)
    assert got.tolist() == expected
    assert got.sum() == (total if k else 0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: implicit_budgets(np.array([0.5, -0.1]), 10), "finite non-negative values"),
        (lambda: implicit_budgets(np.array([0.5, np.nan]), 10), "finite non-negative values"),
        (lambda: implicit_budgets(np.ones((2, 2)), 10), r"a \[K\] numeric array, got \[2, 2\]"),
        (lambda: implicit_budgets(np.ones(2), -1), "total must be a non-negative int, got -1"),
        (lambda: implicit_budgets(np.ones(2), 5, floor=-2), "floor must be a non-negative int"),
        (lambda: implicit_budgets(np.ones(2), 5, mask=np.ones(3, bool)), r"a \[2\] bool array"),
        (lambda: equal_budgets(-1, 5), "k must be a non-negative int, got -1"),
        (lambda: equal_budgets(2, 2.5), "total must be a non-negative int, got 2.5"),
    ],
)
def test_errors_name_expected_and_got(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RetrievalInputError, match=message):
        call()
