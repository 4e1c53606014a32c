"""Filling the budget: lists that the merge ran dry are searched deeper, then merged again.

Deduplication across a user's lists, and the relevance filter, leave lists
shorter than their budgets. Each list is first searched a little deeper than its
budget (`first_depths`); when the merge still finds a list dry at one of its
turns (``Candidates.starved``) and the list's source holds more items, that list
is searched deeper and everything is merged again, until no list is
starved or none has more. So a round-robin merge returns exactly
``min(total, distinct items the lists can reach)`` candidates, in the order of
the round-robin walk over the complete rankings: the budgets are met in phase 1
wherever the sources allow, and the paper's order and deduplication are kept.

A starved list is searched as deep as the merge says it needs: it placed every
item it had (``placed``) and found itself dry at ``missed`` more turns
(`Candidates.missed`), so at the yield it had it needs ``(placed + missed) /
placed`` times its depth; the next search goes a quarter past that, between
1.25x and 8x the depth (2x when the list placed nothing, or the merge records
no count). Each search walks the index from the top again; doubling instead
searched again two or three times in 36 of 300 multi-embedding requests of the
latency benchmark (20 with this rule, none three times), and deeper than needed
in the others.

`fill_budget` takes the search as a function, so that `plan_request` (index
searches) and the offline evaluation (`fill_from_hits`: rows searched once, deep
enough) run the one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve._checks import describe
from multiembed.retrieve._merge import Candidates, Merger, round_robin_merge
from multiembed.retrieve.errors import RetrievalInputError


class Searched(NamedTuple):
    """Some lists of a request, each searched to a depth.

    Attributes:
        lists: ``[R]`` `Ranked` lists (after the relevance filter, where it applies).
        more: ``[R]`` bool, True where the source may hold items beyond that depth.
        filtered: ``[R]`` int64 hits dropped as off-topic.
    """

    lists: Sequence[Ranked]
    more: np.ndarray
    filtered: np.ndarray


class ListSearch(Protocol):
    """``(rows [R], depths [R]) -> Searched``: lists ``rows`` searched to ``depths``."""

    def __call__(self, rows: np.ndarray, depths: np.ndarray) -> Searched: ...


class Filled(NamedTuple):
    """The merged candidates and the lists behind them.

    Attributes:
        candidates: the merge of `lists`.
        lists: ``[L]`` every list at its final depth.
        depths: ``[L]`` int64 depth each list was searched to last.
        filtered: ``[L]`` int64 hits each list dropped as off-topic (at that depth).
        refills: searches after the first (0: the first depths sufficed).
    """

    candidates: Candidates
    lists: tuple[Ranked, ...]
    depths: np.ndarray
    filtered: np.ndarray
    refills: int


def first_depths(
    budgets: np.ndarray, overfetch: float, reach: np.ndarray | None = None
) -> np.ndarray:
    """Depth of each list's first search: ``budget + ceil(overfetch * budget)`` when there
    are several lists (duplicates and filtered items to replace), the budget for one.

    With `reach` ``[L]``, the most items each list's source holds (a topic's size
    under the relevance filter), budget that a list cannot fill is counted to the
    lists that can: phase 2 of the round-robin merge hands it to them evenly, so
    each is searched for its budget plus an even share of what the short lists
    leave (`expected_yields`), ``overfetch`` deeper. Without this, a request whose
    followed topics are small searched its implicit lists a second time: 201 of
    300 multi-embedding requests of the latency benchmark did, 35 with it. A list
    is never searched shallower than without `reach`, so a short list still finds
    itself short (it comes back with fewer hits than its depth).

    >>> first_depths(np.array([10, 3]), 0.2).tolist(), first_depths(np.array([10]), 0.2).tolist()
    ([12, 4], [10])
    >>> first_depths(np.array([10, 10, 10]), 1.0, reach=np.array([100, 100, 4])).tolist()
    [26, 26, 20]
    """
    budgets = np.asarray(budgets, dtype=np.int64)
    if budgets.size <= 1:
        return budgets.copy()
    plain = budgets + np.ceil(overfetch * budgets).astype(np.int64)
    if reach is None:
        return plain
    want = np.ceil(expected_yields(budgets, reach)).astype(np.int64)
    return np.maximum(plain, want + np.ceil(overfetch * want).astype(np.int64))


def expected_yields(budgets: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``[L]`` float: the items each list would place if the lists never shared one,
    lists with `budgets` ``[L]`` whose sources hold `reach` ``[L]`` items.

    A list places ``min(budget, reach)``; what the short ones leave is shared
    evenly by the others, none past its reach (water-filling, as the merge's
    phase 2 walks the lists that still have items).

    >>> expected_yields(np.array([10, 10, 10]), np.array([100, 4, 12])).tolist()
    [14.0, 4.0, 12.0]
    """
    reach = np.asarray(reach, dtype=np.float64)
    budgets = np.asarray(budgets, dtype=np.float64)
    got = np.minimum(budgets, reach)
    left = float(budgets.sum() - got.sum())
    while left > 0:
        room = reach - got
        open_ = room > 0
        if not open_.any():
            break
        share = left / np.count_nonzero(open_)
        add = np.where(open_, np.minimum(room, share), 0.0)
        got += add
        left -= float(add.sum())
        if left <= 1e-9 * budgets.sum():  # spent, up to rounding
            break
    return got


def deepest(total: int, overfetch: float) -> int:
    """A depth at which every list of a plan with `total` candidates is complete: a
    list searched this deep is never starved (it is at least `total` and every first
    depth), so rows searched once to it serve `fill_from_hits` exactly.

    >>> deepest(100, 0.2)
    120
    """
    return total + math.ceil(overfetch * total)


def fill_budget(
    search: ListSearch,
    budgets: np.ndarray,
    total: int,
    *,
    depths: np.ndarray,
    merge: Merger = round_robin_merge,
    first: Searched | None = None,
) -> Filled:
    """Merge the lists, searching the starved ones deeper until none is (see the module).

    Args:
        search: searches lists ``rows`` to ``depths`` (`ListSearch`).
        budgets: ``[L]`` int budget of each list.
        total: candidates wanted.
        depths: ``[L]`` int depth of the first search (`first_depths`).
        merge: `round_robin_merge` (the paper) or `global_topk_merger`.
        first: the first search of every list at `depths`, when the caller ran it
            (the plan batches it with other searches); None: `search` runs it.

    Returns:
        `Filled`. A starved list is searched at least ``1.25x`` deeper each time
        (`next_depths`), so there are at most ``log1.25(source size)`` refills per
        list.
    """
    depths = np.array(depths, dtype=np.int64)
    n_lists = depths.size
    if first is None:
        first = search(np.arange(n_lists), depths)
    if len(first.lists) != n_lists:
        raise RetrievalInputError(
            "fill_budget", "first.lists", f"{n_lists} lists", str(len(first.lists))
        )
    lists = list(first.lists)
    more = np.array(first.more, dtype=bool)
    filtered = np.array(first.filtered, dtype=np.int64)
    refills = 0
    while True:
        candidates = merge(lists, budgets, total)
        deeper = np.flatnonzero(candidates.starved & more)
        if deeper.size == 0:
            return Filled(candidates, tuple(lists), depths, filtered, refills)
        depths[deeper] = next_depths(depths[deeper], deeper, candidates)
        got = search(deeper, depths[deeper])
        for j, row in enumerate(deeper.tolist()):
            lists[row] = got.lists[j]
        more[deeper] = got.more
        filtered[deeper] = got.filtered
        refills += 1


def next_depths(depths: np.ndarray, rows: np.ndarray, merged: Candidates) -> np.ndarray:
    """The next search depth of the starved lists `rows` ``[R]`` searched to `depths`
    ``[R]``, from what the merge `merged` placed of each and the turns it missed.

    >>> c = round_robin_merge([Ranked(np.array([1, 2]), np.ones(2)),
    ...                        Ranked(np.array([2, 3]), np.ones(2))], np.array([2, 2]), 4)
    >>> c.ids.tolist(), c.source.tolist(), c.missed.tolist()  # 3 items of 4: each is short 1
    ([1, 2, 3], [0, 1, 1], [1, 1])
    >>> next_depths(np.array([2, 2]), np.array([0, 1]), c).tolist()  # 2 * 2.5, 2 * 1.5 * 1.25
    [5, 4]
    """
    depths = np.maximum(np.asarray(depths, dtype=np.int64), 1)
    if merged.missed.size == 0:  # a merge that does not count: double
        return 2 * depths
    placed = np.bincount(merged.source, minlength=merged.missed.size)[rows]
    missed = merged.missed[rows]
    need = (placed + missed) / np.maximum(placed, 1) * _MARGIN
    growth = np.where(placed > 0, need.clip(_LEAST, _MOST), 2.0)
    return np.maximum(np.ceil(depths * growth).astype(np.int64), depths + 1)


_MARGIN = 1.25  # past the need the yield so far gives: the yield falls deeper in a list
_LEAST, _MOST = 1.25, 8.0  # growth of a starved list's depth per search


def fill_from_hits(
    ids: np.ndarray,
    scores: np.ndarray,
    budgets: np.ndarray,
    total: int,
    *,
    overfetch: float,
    merge: Merger = round_robin_merge,
) -> Filled:
    """`fill_budget` over lists searched once, as `plan_request` serves them.

    Row ``l`` of `ids` / `scores` ``[L, W]`` is list ``l``'s complete top-``W``
    (``-1`` / ``-inf`` pads a source with fewer items); it is cut to the plan's
    depths, first `first_depths` and then deeper where the merge starves it. With
    ``W >= deepest(total, overfetch)`` the result is the plan's over an exact index.

    >>> ids = np.array([[1, 2, 3, 4], [2, 5, 6, 7]]); s = np.ones((2, 4), np.float32)
    >>> fill_from_hits(ids, s, np.array([3, 1]), 4, overfetch=0.0).candidates.ids.tolist()
    [1, 2, 3, 4]
    """
    if (
        not isinstance(ids, np.ndarray)
        or ids.ndim != 2
        or not isinstance(scores, np.ndarray)
        or scores.shape != ids.shape
    ):
        raise RetrievalInputError(
            "fill_from_hits",
            "ids, scores",
            "two [L, W] arrays",
            f"{describe(ids)}, {describe(scores)}",
        )
    width = ids.shape[1]
    real = (ids >= 0).sum(axis=1)  # [L] pads sit at the end of a row

    def cut(rows: np.ndarray, depths: np.ndarray) -> Searched:
        lists = []
        for r, d in zip(rows.tolist(), depths.tolist(), strict=True):
            n = min(d, int(real[r]))
            lists.append(Ranked(ids[r, :n], scores[r, :n].astype(np.float32, copy=False)))
        return Searched(
            lists, (real[rows] >= depths) & (depths < width), np.zeros(rows.size, np.int64)
        )

    budgets = np.asarray(budgets, dtype=np.int64)
    return fill_budget(cut, budgets, total, depths=first_depths(budgets, overfetch), merge=merge)
