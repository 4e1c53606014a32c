"""Spearman's rank correlation (the offline-online agreement) against loops and its formula."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.simulate import spearman


def loop_spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho by hand: average ranks by counting, then Pearson by loops."""

    def ranks(v: list[float]) -> list[float]:
        return [1 + sum(o < a for o in v) + (sum(o == a for o in v) - 1) / 2 for a in v]

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    den = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return num / den


def test_without_ties_it_is_one_minus_six_sum_d_squared_over_n_n2_minus_1():
    x = np.array([0.31, 0.12, 0.55, 0.40, 0.05, 0.77])
    y = np.array([2.0, 1.5, 0.9, 3.1, -0.2, 2.8])
    rx = np.array([sum(o < a for o in x) + 1 for a in x])  # ranks by counting
    ry = np.array([sum(o < b for o in y) + 1 for b in y])
    n = x.size
    d2 = sum((a - b) ** 2 for a, b in zip(rx, ry, strict=True))
    assert spearman(x, y) == pytest.approx(1 - 6 * d2 / (n * (n * n - 1)))


def test_ties_share_their_average_rank():
    x = [1.0, 2.0, 2.0, 3.0, 5.0]
    y = [0.3, 0.1, 0.1, 0.9, 0.9]
    assert spearman(np.array(x), np.array(y)) == pytest.approx(loop_spearman(x, y))
    # by hand: ranks x 1, 2.5, 2.5, 4, 5 and y 3, 1.5, 1.5, 4.5, 4.5 (means 3):
    # sum of products 6, sums of squares 9.5 and 9
    assert spearman(np.array(x), np.array(y)) == pytest.approx(6 / np.sqrt(9.5 * 9))


def test_perfect_orders_and_undefined_cases():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x[:1], x[:1]) is None  # one arm
    assert spearman(x, np.ones(4)) is None  # a constant side


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=2, max_size=9))
def test_it_matches_the_loop_on_small_tied_samples(pairs):
    x = [float(a) for a, _ in pairs]
    y = [float(b) for _, b in pairs]
    rho = spearman(np.array(x), np.array(y))
    if len(set(x)) == 1 or len(set(y)) == 1:
        assert rho is None
    else:
        assert rho == pytest.approx(loop_spearman(x, y))
