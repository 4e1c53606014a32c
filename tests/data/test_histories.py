"""`latest_per_user`: each user's last L rows, right-aligned, against a loop per user."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.data.histories import latest_per_user


def reference(user: np.ndarray, values: np.ndarray, n_users: int, length: int, fill: object):
    out = np.full((n_users, length), fill, dtype=values.dtype)
    for u in range(n_users):
        rows = [v for w, v in zip(user.tolist(), values.tolist(), strict=True) if w == u]
        rows = rows[max(0, len(rows) - length) :]
        for i, v in enumerate(rows):
            out[u, length - len(rows) + i] = v
    return out


@settings(max_examples=50, deadline=None)
@given(
    users=st.lists(st.integers(0, 5), max_size=30),
    n_extra=st.integers(0, 2),
    length=st.integers(0, 6),
    seed=st.integers(0, 1000),
)
def test_latest_per_user_matches_a_loop(users: list[int], n_extra: int, length: int, seed: int):
    user = np.sort(np.array(users, dtype=np.int64))
    n_users = (int(user.max()) + 1 if user.size else 0) + n_extra
    items = np.random.default_rng(seed).integers(0, 100, user.size)
    got = latest_per_user(user, items, n_users, length, fill=-1)
    np.testing.assert_array_equal(got, reference(user, items, n_users, length, -1))
    flags = items % 2 == 0
    got_flags = latest_per_user(user, flags, n_users, length, fill=False)
    assert got_flags.dtype == np.bool_
    np.testing.assert_array_equal(got_flags, reference(user, flags, n_users, length, False))


def test_latest_per_user_keeps_the_last_rows_at_the_right():
    user = np.array([0, 0, 0, 0, 2])
    got = latest_per_user(user, np.array([1, 2, 3, 4, 9]), 3, 3, fill=-1)
    assert got.tolist() == [[2, 3, 4], [-1, -1, -1], [-1, -1, 9]]


def test_latest_per_user_refuses_unsorted_or_unknown_users():
    with pytest.raises(ValueError, match=r"in \[0, 3\), got values from 0 to 2, not sorted"):
        latest_per_user(np.array([2, 0]), np.array([1, 2]), 3, 2, fill=-1)
    with pytest.raises(ValueError, match=r"got values from 0 to 3$"):
        latest_per_user(np.array([0, 3]), np.array([1, 2]), 3, 2, fill=-1)
    with pytest.raises(ValueError, match=r"one shape \[E\], got \[2\] and \[3\]"):
        latest_per_user(np.array([0, 1]), np.array([1, 2, 3]), 3, 2, fill=-1)
