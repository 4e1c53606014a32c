"""time_split and comirec_split against hand-computed values and naive per-event references."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.config import SplitConfig
from multiembed.data.split import Role, comirec_split, split_events, time_split
from multiembed.errors import DataError

DAY = 86_400
FAST = settings(max_examples=40, deadline=None)


# --- time_split ----------------------------------------------------------------------------


def test_time_split_paper_window_fifteen_days() -> None:
    start = 1_700_000_000
    # one event at the start of every day 0..14, plus one at the last second of day 14
    ts = np.array([start + d * DAY for d in range(15)] + [start + 15 * DAY - 1])
    s = time_split(ts, train_days=14, eval_days=1)
    assert s.end == start + 15 * DAY - 1
    assert s.eval_start == start + 14 * DAY - 1
    assert s.train_start == start - 1
    assert s.train.tolist() == [True] * 14 + [False, False]
    assert s.eval.tolist() == [False] * 14 + [True, True]


def test_time_split_older_events_are_neither_and_end_bounds_the_window() -> None:
    ts = np.array([0, 5 * DAY, 6 * DAY, 7 * DAY, 9 * DAY])
    s = time_split(ts, train_days=1, eval_days=1, end=7 * DAY)
    assert s.train.tolist() == [False, False, True, False, False]
    assert s.eval.tolist() == [False, False, False, True, False]  # 9 * DAY is after end
    assert (s.train_start, s.eval_start, s.end) == (5 * DAY, 6 * DAY, 7 * DAY)


def test_time_split_fractional_days_and_arrow_input() -> None:
    ts = pa.chunked_array([[0, DAY // 2], [DAY]])
    s = time_split(ts, train_days=0.5, eval_days=0.5)
    assert s.train.tolist() == [False, True, False]
    assert s.eval.tolist() == [False, False, True]


@FAST
@given(
    ts=st.lists(st.integers(0, 40 * DAY), min_size=1, max_size=60),
    train_days=st.floats(0.1, 20),
    eval_days=st.floats(0.1, 5),
)
def test_time_split_matches_naive_per_event(
    ts: list[int], train_days: float, eval_days: float
) -> None:
    try:
        s = time_split(ts, train_days=train_days, eval_days=eval_days)
    except DataError:
        return  # an empty window; covered by its own test
    end = max(ts)
    eval_start = end - round(eval_days * DAY)
    train_start = eval_start - round(train_days * DAY)
    for i, t in enumerate(ts):
        assert s.train[i] == (train_start < t <= eval_start)
        assert s.eval[i] == (eval_start < t <= end)
        assert not (s.train[i] and s.eval[i])


def test_time_split_errors_say_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"expected train_days > 0, got 0"):
        time_split([1], train_days=0, eval_days=1)
    with pytest.raises(ValueError, match=r"expected eval_days > 0, got -1"):
        time_split([1], train_days=1, eval_days=-1)
    with pytest.raises(DataError, match="no engagements"):
        time_split(np.array([], dtype=np.int64), train_days=1, eval_days=1)
    with pytest.raises(DataError, match=r"no events in the training window"):
        time_split([0, 10], train_days=1, eval_days=1)
    with pytest.raises(ValueError, match=r"expected ts of shape \[E\], got shape \[2, 1\]"):
        time_split(np.zeros((2, 1), dtype=np.int64), train_days=1, eval_days=1)
    with pytest.raises(ValueError, match=r"expected ts of an integer dtype, got float64"):
        time_split(np.array([1.5]), train_days=1, eval_days=1)
    with pytest.raises(ValueError, match=r"expected ts without nulls, got 1"):
        time_split(pa.array([1, None]), train_days=1, eval_days=1)


# --- comirec_split -------------------------------------------------------------------------


def naive_comirec(
    users: list[int], ts: list[int], seed: int, valid: float, test: float, hist: float
) -> list[int]:
    """The protocol one user and one event at a time."""
    distinct = sorted(set(users))
    perm = np.random.default_rng(seed).permutation(len(distinct))
    n_valid, n_test = round(len(distinct) * valid), round(len(distinct) * test)
    group = {}
    for rank, p in enumerate(perm):
        group[distinct[p]] = 1 if rank < n_valid else 2 if rank < n_valid + n_test else 0
    roles = [int(Role.TRAIN)] * len(users)
    for u in distinct:
        if group[u] == 0:
            continue
        rows = sorted((i for i in range(len(users)) if users[i] == u), key=lambda i: (ts[i], i))
        k = math.floor(len(rows) * hist + 1e-9)
        for position, i in enumerate(rows):
            if group[u] == 1:
                roles[i] = Role.VALID_HISTORY if position < k else Role.VALID_TARGET
            else:
                roles[i] = Role.TEST_HISTORY if position < k else Role.TEST_TARGET
    return roles


def test_comirec_default_shares_split_users_8_1_1_and_events_80_20() -> None:
    n_users, per_user = 100, 10
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(n_users) * 7 + 3, per_user)  # non-contiguous ids
    ts = rng.integers(0, 1000, size=users.size)
    roles = comirec_split(users, ts, seed=1)
    assert roles.dtype == np.int8
    by_user = {int(u): set(roles[users == u].tolist()) for u in np.unique(users)}
    kinds = {frozenset(v) for v in by_user.values()}
    assert kinds == {
        frozenset({Role.TRAIN}),
        frozenset({Role.VALID_HISTORY, Role.VALID_TARGET}),
        frozenset({Role.TEST_HISTORY, Role.TEST_TARGET}),
    }
    n_valid = sum(Role.VALID_TARGET in v for v in by_user.values())
    n_test = sum(Role.TEST_TARGET in v for v in by_user.values())
    assert (n_users - n_valid - n_test, n_valid, n_test) == (80, 10, 10)
    assert np.count_nonzero(roles == Role.VALID_HISTORY) == 8 * n_valid
    assert np.count_nonzero(roles == Role.TEST_TARGET) == 2 * n_test
    # history strictly precedes targets in time order for every held-out user
    for u in np.unique(users):
        r, t = roles[users == u], ts[users == u]
        hist = np.isin(r, [Role.VALID_HISTORY, Role.TEST_HISTORY])
        if hist.any() and (~hist).any() and r[0] != Role.TRAIN:
            assert t[hist].max() <= t[~hist].min()


def test_comirec_is_deterministic_per_seed() -> None:
    users = np.repeat(np.arange(50), 5)
    ts = np.tile(np.arange(5), 50)
    a = comirec_split(users, ts, seed=3)
    assert np.array_equal(a, comirec_split(users, ts, seed=3))
    assert not np.array_equal(a, comirec_split(users, ts, seed=4))


def test_comirec_ties_keep_input_order_and_one_event_user_is_a_target() -> None:
    users = [5, 5, 5, 5, 5, 9]
    ts = [7, 7, 7, 7, 7, 1]
    roles = comirec_split(users, ts, seed=0, valid_share=0.0, test_share=0.5)
    assert roles.tolist().count(Role.TEST_TARGET) == 1
    if roles[5] == Role.TEST_TARGET:  # user 9 held out: its single event is a target
        assert roles[:5].tolist() == [Role.TRAIN] * 5
    else:  # user 5 held out: first four rows in input order are history
        assert roles.tolist() == [Role.TEST_HISTORY] * 4 + [Role.TEST_TARGET, Role.TRAIN]


@FAST
@given(
    events=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 20)), min_size=1, max_size=80),
    seed=st.integers(0, 2**32 - 1),
    valid=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
    test=st.sampled_from([0.0, 0.1, 0.3]),
    hist=st.sampled_from([0.5, 0.7, 0.8, 0.9]),
)
def test_comirec_matches_naive_reference(
    events: list[tuple[int, int]], seed: int, valid: float, test: float, hist: float
) -> None:
    users = [u for u, _ in events]
    ts = [t for _, t in events]
    got = comirec_split(
        users, ts, seed=seed, valid_share=valid, test_share=test, history_share=hist
    )
    assert got.tolist() == naive_comirec(users, ts, seed, valid, test, hist)


def test_comirec_errors_say_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"expected valid_share in \[0, 0.5\], got 0.7"):
        comirec_split([0], [0], seed=0, valid_share=0.7)
    with pytest.raises(ValueError, match=r"expected history_share in \(0, 1\), got 1.0"):
        comirec_split([0], [0], seed=0, history_share=1.0)
    with pytest.raises(ValueError, match=r"same length, got 2 and 1"):
        comirec_split([0, 1], [0], seed=0)
    with pytest.raises(DataError, match="no engagements"):
        comirec_split([], [], seed=0)


# --- split_events: the default split on any log ---------------------------------------------


def _log(span_s: int, n_users: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Users with 3-60 events each, spread uniformly over ``span_s`` seconds."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(3, 61, size=n_users)
    users = np.repeat(np.arange(n_users), counts)
    ts = 1_000_000_000 + rng.integers(0, max(span_s, 1), size=users.size)
    return users, ts


@pytest.mark.parametrize(
    ("name", "span_s"),
    [("twenty years", 20 * 365 * DAY), ("one day", DAY - 1), ("order only", 0)],
)
def test_default_split_trains_on_at_least_90_percent_of_any_log(name: str, span_s: int) -> None:
    users, ts = _log(span_s)
    if name == "order only":  # positions as minutes after an epoch, as order-only logs have
        ts = 1_500_000_000 + 60 * np.arange(users.size)
    s = split_events(users, ts, np.ones(users.size, bool), SplitConfig())
    counts = s.summary(np.ones(users.size, bool))
    assert counts["training_share"] >= 0.9, name
    assert counts["validation_targets"] > 0
    assert counts["test_targets"] > 0
    # held-out targets are never training targets, and they are each user's last events
    held = np.isin(s.roles, [Role.VALID_TARGET, Role.TEST_TARGET])
    assert not (s.train & held).any()
    assert counts["training_targets"] + held.sum() == users.size


def test_default_split_validation_and_test_users_are_disjoint() -> None:
    users, ts = _log(365 * DAY)
    s = split_events(users, ts, np.ones(users.size, bool), SplitConfig())
    valid = np.unique(users[s.roles == Role.VALID_TARGET])
    test = np.unique(users[s.roles == Role.TEST_TARGET])
    assert valid.size
    assert test.size
    assert not np.isin(valid, test).any()


def test_a_split_keeping_under_half_is_refused_with_the_setting_named() -> None:
    users, ts = _log(20 * 365 * DAY)
    config = SplitConfig(protocol="time")
    with pytest.raises(DataError) as err:
        split_events(users, ts, np.ones(users.size, bool), config)
    message = str(err.value)
    assert message.startswith("split.protocol = 'time' keeps ")
    assert "under half of the log: the window of split.train_days = 14 + split.eval_days = 1" in (
        message
    )
    assert 'Use split.protocol = "users" (the default)' in message
    assert message.endswith("or set split.allow_small_train = true to train on it anyway")
    allowed = split_events(
        users, ts, np.ones(users.size, bool), SplitConfig(protocol="time", allow_small_train=True)
    )
    assert 0 < allowed.train.sum() < users.size / 2


def test_comirec_split_events_never_trains_on_held_out_users() -> None:
    users, ts = _log(365 * DAY)
    s = split_events(users, ts, np.ones(users.size, bool), SplitConfig(protocol="comirec"))
    held_users = np.unique(users[s.roles != Role.TRAIN])
    assert not np.isin(users[s.train], held_users).any()
    assert s.summary(np.ones(users.size, bool))["training_share"] == pytest.approx(
        np.mean(s.roles == Role.TRAIN)
    )
