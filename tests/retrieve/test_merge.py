"""Round-robin and global top-k merges against naive references, plus properties."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.index import Ranked
from multiembed.retrieve import (
    Candidates,
    RetrievalInputError,
    global_topk_merge,
    round_robin_merge,
)

FAST = settings(max_examples=200, deadline=None, derandomize=True)


def reference_round_robin(
    lists: list[list[int]], budgets: list[int], total: int
) -> list[tuple[int, int, int]]:
    """The documented rule with queues: (item, list, rank) in merged order."""
    queues = [deque(enumerate(items)) for items in lists]
    out: list[tuple[int, int, int]] = []
    seen: set[int] = set()
    taken = [0] * len(lists)

    def next_new(i: int) -> tuple[int, int] | None:
        while queues[i]:
            rank, item = queues[i].popleft()
            if item not in seen:
                return rank, item
        return None

    for phase in ("budgeted", "lifted"):
        open_ = [
            i for i in range(len(lists)) if (budgets[i] > 0 if phase == "budgeted" else queues[i])
        ]
        while open_ and len(out) < total:
            still = []
            for i in open_:
                if len(out) == total:
                    break
                got = next_new(i)
                if got is None:
                    continue
                rank, item = got
                seen.add(item)
                out.append((item, i, rank))
                taken[i] += 1
                if phase == "lifted" or taken[i] < budgets[i]:
                    still.append(i)
            open_ = still
    return out


def reference_global(lists: list[list[tuple[int, float]]], total: int) -> list[tuple[int, int]]:
    """Best score per item (ties: smaller list, smaller rank); order score desc, id asc."""
    best: dict[int, tuple[float, int, int]] = {}
    for i, items in enumerate(lists):
        for rank, (item, score) in enumerate(items):
            key = (-score, i, rank)
            if item not in best or key < best[item]:
                best[item] = key
    order = sorted(best, key=lambda item: (best[item][0], item))
    return [(item, best[item][1]) for item in order[:total]]


def ranked(items: list[int], seed: int = 0) -> Ranked:
    rng = np.random.default_rng(seed)
    scores = np.sort(rng.random(len(items)).astype(np.float32))[::-1].copy()
    return Ranked(np.array(items, dtype=np.int64), scores)


lists_strategy = st.lists(
    st.lists(st.integers(0, 40), max_size=25, unique=True), min_size=0, max_size=6
)


def check_provenance(c: Candidates, lists: list[Ranked]) -> None:
    """Every occurrence of a merged id in any list is recorded, with its rank and score."""
    for n, item in enumerate(c.ids.tolist()):
        expected = [
            (i, r, float(lists[i].scores[r]))
            for i, lst in enumerate(lists)
            for r in np.flatnonzero(lst.ids == item).tolist()
        ]
        assert [tuple(o) for o in c.found_by(n)] == expected
        assert (int(c.source[n]), int(c.rank[n]), float(c.scores[n])) in expected


def test_first_position_is_kept() -> None:
    # item 9 is rank 1 of list 0 and rank 0 of list 1. Round 0 places 1 (list 0), then 9
    # (list 1): 9 keeps that first position; list 0 skips it in round 1 but is recorded.
    a, b = ranked([1, 9, 3]), ranked([9, 4])
    got = round_robin_merge([a, b], np.array([3, 3]), total=5)
    assert got.ids.tolist() == [1, 9, 3, 4]
    assert (int(got.source[1]), int(got.rank[1])) == (1, 0)
    assert [(o.source, o.rank) for o in got.found_by(1)] == [(0, 1), (1, 0)]


def test_pinned_round_robin() -> None:
    a = ranked([1, 2, 3, 4, 5])
    b = ranked([2, 6, 7])
    c = ranked([8])
    got = round_robin_merge([a, b, c], np.array([2, 2, 2]), total=7)
    # round 0: 1 (a), 2 (b), 8 (c); round 1: a skips 2 -> 3, b 6; c is dry.
    # phase 2 (budgets lifted): a 4, b 7.
    assert got.ids.tolist() == [1, 2, 8, 3, 6, 4, 7]
    assert got.source.tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert got.rank.tolist() == [0, 0, 0, 2, 1, 3, 2]
    assert [o.source for o in got.found_by(1)] == [0, 1]  # item 2 recorded from both


@FAST
@given(lists=lists_strategy, budgets_seed=st.integers(0, 2**31 - 1), total=st.integers(0, 120))
def test_round_robin_matches_reference(
    lists: list[list[int]], budgets_seed: int, total: int
) -> None:
    rng = np.random.default_rng(budgets_seed)
    budgets = rng.integers(0, 12, size=len(lists))
    inputs = [ranked(items, seed=i) for i, items in enumerate(lists)]
    got = round_robin_merge(inputs, budgets, total)
    want = reference_round_robin(lists, budgets.tolist(), total)
    assert list(zip(got.ids.tolist(), got.source.tolist(), got.rank.tolist(), strict=True)) == want


def test_duplicate_is_credited_to_the_list_whose_turn_comes_first() -> None:
    # Phase 1: round 0 places 1 (list 0, budget now spent) and 2 (list 1); round 1: 3
    # (list 1); round 2: 9 (list 1, rank 2). Only then does phase 2 give list 0 its turn,
    # at rank 1, where 9 is already placed: 9 belongs to list 1 at rank 2.
    a, b = ranked([1, 9]), ranked([2, 3, 9])
    got = round_robin_merge([a, b], np.array([1, 3]), total=5)
    assert got.ids.tolist() == [1, 2, 3, 9]
    assert got.source.tolist() == [0, 1, 1, 1]
    assert got.rank.tolist() == [0, 0, 1, 2]
    assert [(o.source, o.rank) for o in got.found_by(3)] == [(0, 1), (1, 2)]


def test_phase_two_comes_after_every_phase_one_round() -> None:
    # No shared ids: list 0 places 1 in round 0 and waits for phase 2 to place 2;
    # list 1 still has phase-1 budget for 4 in round 1, which comes first.
    got = round_robin_merge([ranked([1, 2]), ranked([3, 4])], np.array([1, 2]), total=4)
    assert got.ids.tolist() == [1, 3, 4, 2]
    assert got.source.tolist() == [0, 1, 1, 0]


# few ids, short lists and small budgets: duplicates meet across phases and rounds often
dense_lists = st.lists(st.lists(st.integers(0, 9), max_size=8, unique=True), max_size=5)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(lists=dense_lists, budgets=st.lists(st.integers(0, 4), min_size=5, max_size=5))
def test_round_robin_matches_reference_on_dense_duplicates(
    lists: list[list[int]], budgets: list[int]
) -> None:
    budgets = budgets[: len(lists)]
    total = len({item for items in lists for item in items})
    got = round_robin_merge(
        [ranked(items, seed=i) for i, items in enumerate(lists)],
        np.array(budgets, dtype=np.int64),
        total,
    )
    want = reference_round_robin(lists, budgets, total)
    assert list(zip(got.ids.tolist(), got.source.tolist(), got.rank.tolist(), strict=True)) == want


@FAST
@given(lists=lists_strategy, budgets_seed=st.integers(0, 2**31 - 1), total=st.integers(0, 120))
def test_round_robin_without_shared_ids_matches_reference(
    lists: list[list[int]], budgets_seed: int, total: int
) -> None:
    """Lists that share no id take the vectorised path; it must agree with the walk."""
    lists = [[1000 * i + item for item in items] for i, items in enumerate(lists)]
    rng = np.random.default_rng(budgets_seed)
    budgets = rng.integers(0, 12, size=len(lists))
    got = round_robin_merge(
        [ranked(items, seed=i) for i, items in enumerate(lists)], budgets, total
    )
    want = reference_round_robin(lists, budgets.tolist(), total)
    assert list(zip(got.ids.tolist(), got.source.tolist(), got.rank.tolist(), strict=True)) == want


@FAST
@given(lists=lists_strategy, budgets_seed=st.integers(0, 2**31 - 1), total=st.integers(0, 120))
def test_round_robin_properties(lists: list[list[int]], budgets_seed: int, total: int) -> None:
    rng = np.random.default_rng(budgets_seed)
    budgets = rng.integers(0, 12, size=len(lists))
    inputs = [ranked(items, seed=i) for i, items in enumerate(lists)]
    got = round_robin_merge(inputs, budgets, total)
    distinct = {item for items in lists for item in items}
    assert len(got) == min(total, len(distinct))  # the total is honoured exactly
    assert len(set(got.ids.tolist())) == len(got)  # deduplicated
    assert set(got.ids.tolist()) <= distinct
    assert (got.ids >= 0).all()
    assert np.isfinite(got.scores).all()
    check_provenance(got, inputs)
    # a list goes over its budget only once every list is at its budget or dry
    placed = np.bincount(got.source, minlength=len(lists))
    over = placed > budgets
    if over.any():
        merged = set(got.ids.tolist())
        for i, items in enumerate(lists):
            assert placed[i] >= budgets[i] or set(items) <= merged


@FAST
@given(lists=lists_strategy, total=st.integers(0, 120), seed=st.integers(0, 2**31 - 1))
def test_global_topk_matches_reference(lists: list[list[int]], total: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # scores on a coarse grid so that ties across lists happen
    inputs = [
        Ranked(
            np.array(items, dtype=np.int64),
            np.sort(rng.integers(0, 5, len(items)) / 4).astype(np.float32)[::-1].copy(),
        )
        for items in lists
    ]
    got = global_topk_merge(inputs, total)
    want = reference_global(
        [list(zip(r.ids.tolist(), r.scores.tolist(), strict=True)) for r in inputs], total
    )
    assert list(zip(got.ids.tolist(), got.source.tolist(), strict=True)) == want
    check_provenance(got, inputs)


def test_empty_inputs() -> None:
    assert len(round_robin_merge([], np.zeros(0, dtype=np.int64), 10)) == 0
    assert len(global_topk_merge([], 10)) == 0
    empty = Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    assert len(round_robin_merge([empty], np.array([5]), 5)) == 0


@pytest.mark.parametrize(
    ("lists", "budgets", "message"),
    [
        ([Ranked(np.array([1, -1]), np.array([0.5, -np.inf]))], [2], r"lists\[0\].ids must be"),
        ([Ranked(np.array([1, 2]), np.array([0.5, np.nan]))], [2], "finite scores, got NaN"),
        (
            [Ranked(np.array([1, 2]), np.array([0.5]))],
            [2],
            r"\(ids \[N\] int, scores \[N\] float\)",
        ),
        ([Ranked(np.array([1]), np.array([0.5]))], [1, 2], r"budgets must be \[1\] non-negative"),
        ([Ranked(np.array([1]), np.array([0.5]))], [-1], r"budgets must be \[1\] non-negative"),
    ],
)
def test_errors(lists: list[Ranked], budgets: list[int], message: str) -> None:
    with pytest.raises(RetrievalInputError, match=message):
        round_robin_merge(lists, np.array(budgets), 3)
