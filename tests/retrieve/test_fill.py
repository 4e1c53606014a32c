"""Filling the budget: lists the merge runs dry are searched deeper (`fill_budget`).

The reference is the round-robin walk over the complete rankings: what a plan
would serve if every list were searched to the end. Searching each list only
as deep as the walk needs must give exactly that.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from multiembed.index import Ranked
from multiembed.retrieve import (
    Searched,
    deepest,
    expected_yields,
    fill_budget,
    fill_from_hits,
    first_depths,
    global_topk_merger,
    round_robin_merge,
)
from tests.retrieve.test_merge import ranked, reference_round_robin

FILL = settings(max_examples=300, deadline=None, derandomize=True)


def reference_starved(lists: list[list[int]], budgets: list[int], total: int) -> list[bool]:
    """The walk of `reference_round_robin`, noting every list asked for an item at its
    turn (before `total` is reached) when it has none left."""
    queues = [deque(items) for items in lists]
    seen: set[int] = set()
    taken = [0] * len(lists)
    placed = 0
    starved = [False] * len(lists)
    for phase in ("budgeted", "lifted"):
        open_ = [i for i in range(len(lists)) if phase == "lifted" or budgets[i] > 0]
        while open_ and placed < total:
            still = []
            for i in open_:
                if placed == total:
                    break
                while queues[i] and queues[i][0] in seen:
                    queues[i].popleft()
                if not queues[i]:
                    starved[i] = True
                    continue
                seen.add(queues[i].popleft())
                placed += 1
                taken[i] += 1
                if phase == "lifted" or taken[i] < budgets[i]:
                    still.append(i)
            open_ = still
    return starved


def reference_missed(lists: list[list[int]], budgets: list[int], total: int) -> list[int]:
    """The same walk, where a dry list keeps its turns (phase 1: while it has had fewer
    than its budget; phase 2: every round) and counts each one it finds itself dry at
    before `total` is reached; when all the lists hold fewer than `total` items, every
    list that was ever dry counts the shortfall."""
    queues = [deque(items) for items in lists]
    seen: set[int] = set()
    turns = [0] * len(lists)  # turns taken, placed or missed
    missed = [0] * len(lists)
    placed = 0
    for phase in ("budgeted", "lifted"):
        while placed < total:
            asked = [i for i in range(len(lists)) if phase == "lifted" or turns[i] < budgets[i]]
            if not asked or (phase == "lifted" and not any(q for q in queues)):
                break
            for i in asked:
                if placed == total:
                    break
                while queues[i] and queues[i][0] in seen:
                    queues[i].popleft()
                turns[i] += 1
                if queues[i]:
                    seen.add(queues[i].popleft())
                    placed += 1
                else:
                    missed[i] += 1
    if placed < total:
        starved = reference_starved(lists, budgets, total)
        return [total - placed if dry else 0 for dry in starved]
    return missed


def padded(lists: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """``[L, width]`` ids (``-1`` pads) and scores (non-increasing, ``-inf`` pads)."""
    ids = np.full((len(lists), width), -1, dtype=np.int64)
    scores = np.full((len(lists), width), -np.inf, dtype=np.float32)
    for i, items in enumerate(lists):
        ids[i, : len(items)] = items
        scores[i, : len(items)] = ranked(items, seed=i).scores
    return ids, scores


def test_two_overlapping_lists_fill_the_budget() -> None:
    # Both lists start with the same two items: searched to their budgets (2 each, no
    # overfetch), the merge places 1 and 2 and finds both lists dry: 2 of 4. Searched
    # deeper, each list places its budget in phase 1, in round-robin order.
    a, b = [1, 2, 3, 4, 5, 6], [2, 1, 3, 7, 8, 9]
    ids, scores = padded([a, b], 6)
    short = round_robin_merge(
        [Ranked(ids[i, :2], scores[i, :2]) for i in range(2)], np.array([2, 2]), 4
    )
    assert short.ids.tolist() == [1, 2]  # what the plan served before the refill
    assert short.starved.tolist() == [True, True]
    got = fill_from_hits(ids, scores, np.array([2, 2]), 4, overfetch=0.0)
    assert got.candidates.ids.tolist() == [1, 2, 3, 7]
    assert got.candidates.source.tolist() == [0, 1, 0, 1]
    assert got.candidates.rank.tolist() == [0, 0, 2, 3]
    # each list placed one item and the merge was two short: the next search goes 3.75x
    # deeper, (1 + 2) / 1 with a quarter to spare (the lists hold 6)
    assert got.depths.tolist() == [8, 8]
    assert got.refills == 1
    assert [(o.source, o.rank) for o in got.candidates.found_by(2)] == [(0, 2), (1, 2)]


def test_a_list_that_is_truly_dry_leaves_its_budget_to_the_others() -> None:
    # list 1 holds one item only (its source has no more): phase 2 gives list 0 the rest
    ids, scores = padded([[1, 2, 3, 4, 5, 6, 7, 8], [1]], 8)
    got = fill_from_hits(ids, scores, np.array([3, 3]), 6, overfetch=0.0)
    assert got.candidates.ids.tolist() == [1, 2, 3, 4, 5, 6]
    assert got.candidates.source.tolist() == [0, 0, 0, 0, 0, 0]


def test_first_depths_and_the_deepest_list() -> None:
    assert first_depths(np.array([10, 3, 1]), 0.2).tolist() == [12, 4, 2]
    assert first_depths(np.array([10]), 0.2).tolist() == [10]  # one list: no duplicates
    assert first_depths(np.array([10, 3]), 0.0).tolist() == [10, 3]
    assert deepest(100, 0.2) == 120
    assert deepest(7, 0.0) == 7


def test_first_depths_count_what_short_lists_leave_to_the_others() -> None:
    # list 2's source holds 4 of its 10: the other two are searched for 13 each
    assert first_depths(np.array([10, 10, 10]), 0.0, reach=np.array([50, 50, 4])).tolist() == [
        13,
        13,
        10,  # never shallower than without the reach: it must find itself short
    ]
    # a list that cannot take its share takes what it can, the rest goes on
    got = first_depths(np.array([10, 10, 10]), 0.5, reach=np.array([50, 11, 2]))
    assert got.tolist() == [26, 17, 15]  # yields 17, 11, 2; 17 + ceil(8.5)
    # enough everywhere: the plain depths
    assert first_depths(np.array([10, 3]), 0.2, reach=np.array([99, 99])).tolist() == [12, 4]


@FILL
@given(
    reach=st.lists(st.integers(0, 30), min_size=1, max_size=6),
    budgets=st.lists(st.integers(0, 20), min_size=6, max_size=6),
)
def test_expected_yields_are_what_the_merge_places_from_disjoint_lists(
    reach: list[int], budgets: list[int]
) -> None:
    """Lists that share no item, each as long as its reach: the round-robin merge of
    the sum of the budgets places, per list, the expected yield up to the round
    that splits a share (within one item)."""
    b = np.array(budgets[: len(reach)], dtype=np.int64)
    lists, start = [], 0
    for n in reach:
        lists.append(ranked(list(range(start, start + n))))
        start += n
    merged = round_robin_merge(lists, b, int(b.sum()))
    placed = np.bincount(merged.source, minlength=len(reach))
    want = expected_yields(b, np.array(reach))
    assert np.all(np.abs(placed - want) < 1.0 + 1e-9), (placed, want)
    assert np.isclose(want.sum(), min(b.sum(), sum(reach)))


dense = st.lists(st.lists(st.integers(0, 14), max_size=12, unique=True), min_size=1, max_size=5)


@FILL
@given(lists=dense, budgets=st.lists(st.integers(0, 5), min_size=5, max_size=5))
def test_starved_lists_and_their_missed_turns_match_the_walk(
    lists: list[list[int]], budgets: list[int]
) -> None:
    budgets = budgets[: len(lists)]
    for total in (0, 3, 8, 40):
        got = round_robin_merge(
            [ranked(items, seed=i) for i, items in enumerate(lists)],
            np.array(budgets, dtype=np.int64),
            total,
        )
        assert got.starved.tolist() == reference_starved(lists, budgets, total), total
        assert got.missed.tolist() == reference_missed(lists, budgets, total), total


@FILL
@given(
    lists=dense,
    budgets=st.lists(st.integers(1, 5), min_size=5, max_size=5),
    total=st.integers(1, 30),
    overfetch=st.sampled_from([0.0, 0.2, 1.0]),
)
def test_filling_equals_the_walk_over_complete_lists(
    lists: list[list[int]], budgets: list[int], total: int, overfetch: float
) -> None:
    budgets = budgets[: len(lists)]
    ids, scores = padded(lists, max(deepest(total, overfetch), 12))
    got = fill_from_hits(ids, scores, np.array(budgets), total, overfetch=overfetch)
    want = reference_round_robin(lists, budgets, total)
    c = got.candidates
    assert list(zip(c.ids.tolist(), c.source.tolist(), c.rank.tolist(), strict=True)) == want
    distinct = {item for items in lists for item in items}
    assert len(c) == min(total, len(distinct))  # the budget is met whenever items exist
    assert not (c.starved & (got.depths < [len(items) for items in lists])).any()


@FILL
@given(
    lists=dense,
    budgets=st.lists(st.integers(1, 5), min_size=5, max_size=5),
    total=st.integers(1, 30),
)
def test_lists_cut_at_the_deepest_depth_serve_exactly(
    lists: list[list[int]], budgets: list[int], total: int
) -> None:
    """Rows searched once to `deepest` give what rows searched to the end give."""
    budgets = budgets[: len(lists)]
    full = fill_from_hits(*padded(lists, 16), np.array(budgets), total, overfetch=0.0)
    cut = padded([items[: deepest(total, 0.0)] for items in lists], deepest(total, 0.0))
    short = fill_from_hits(*cut, np.array(budgets), total, overfetch=0.0)
    assert short.candidates.ids.tolist() == full.candidates.ids.tolist()


def test_global_topk_searches_deeper_only_when_short() -> None:
    a, b = [1, 2, 3, 4], [2, 1, 5, 6]
    ids, scores = padded([a, b], 4)
    got = fill_from_hits(ids, scores, np.array([2, 2]), 4, overfetch=0.0, merge=global_topk_merger)
    assert len(got.candidates) == 4
    assert got.depths.tolist() == [4, 5]  # list 0 placed nothing: twice; list 1 (2 + 2) / 2
    full = fill_from_hits(ids, scores, np.array([2, 2]), 2, overfetch=0.0, merge=global_topk_merger)
    assert full.refills == 0  # 2 distinct items within the budgets: nothing to refill
    assert full.depths.tolist() == [2, 2]


def test_fill_budget_asks_only_for_the_starved_lists() -> None:
    lists = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 13], [1, 10, 11, 12]]
    asked: list[tuple[list[int], list[int]]] = []

    def search(rows: np.ndarray, depths: np.ndarray) -> Searched:
        asked.append((rows.tolist(), depths.tolist()))
        got = [ranked(lists[r][:d], seed=r) for r, d in zip(rows, depths, strict=True)]
        more = np.array([d < len(lists[r]) for r, d in zip(rows, depths, strict=True)])
        return Searched(got, more, np.zeros(rows.size, np.int64))

    got = fill_budget(search, np.array([2, 2, 2]), 6, depths=np.array([3, 3, 2]))
    # list 2's first item is list 0's, so it runs dry in round 1; lists 0 and 1 have an
    # item to spare: only list 2 is searched again. It placed one item and missed one
    # turn before the walk ended: 2 * (1 + 1) / 1, a quarter past that
    assert asked == [([0, 1, 2], [3, 3, 2]), ([2], [5])]
    assert got.candidates.ids.tolist() == [1, 7, 10, 2, 8, 11]
    assert got.depths.tolist() == [3, 3, 5]
