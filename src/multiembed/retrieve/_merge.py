"""Merging the ranked lists of several embeddings into one candidate list, with provenance.

`round_robin_merge` is the paper's strategy (Section 3.5): round-robin across
embeddings with deduplication, each within its budget. `global_topk_merge` is
the alternative the paper tried online (Section 4.4: "taking the top ranked
candidates among all embeddings", a 0.35% loss in repin users).

Both return `Candidates`, a struct of arrays: the merged ids ``[N]`` with the
list, rank and score that placed each one, and a provenance table ``[M]``
recording every (candidate, list) occurrence, so a candidate found by several
embeddings lists all of them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve._checks import describe, non_negative_int
from multiembed.retrieve.errors import RetrievalInputError


class Occurrence(NamedTuple):
    """One list in which a candidate was found: list index, 0-based rank, score there."""

    source: int
    rank: int
    score: float


@dataclass(frozen=True)
class Candidates:
    """Merged candidates ``[N]`` and every occurrence ``[M]`` of them in the input lists.

    Attributes:
        ids: ``[N]`` int64 item ids in merged order (no -1, no repeats).
        scores: ``[N]`` float32 score in the list that placed the item.
        source: ``[N]`` int64 index of the list that placed the item.
        rank: ``[N]`` int64 0-based rank of the item in that list.
        hit_candidate: ``[M]`` int64 index into `ids` of each occurrence, ascending.
        hit_source: ``[M]`` int64 list of each occurrence (ascending within a candidate).
        hit_rank: ``[M]`` int64 rank of each occurrence in its list.
        hit_score: ``[M]`` float32 score of each occurrence.
        starved: ``[L]`` bool, lists the merge ran dry while it still had a turn for
            them: were such a list deeper, the merge could place more of it (the plan
            searches them deeper, `fill_budget`). Empty when not recorded.
        missed: ``[L]`` int64, the turns each starved list found it dry before the walk
            ended (0 for the others): at most that many more items would it place if
            it were deeper, which sizes its next search (`fill_budget`). When the
            lists together hold fewer than ``total`` items, each starved list's count
            is the shortfall. Empty when not recorded.
    """

    ids: np.ndarray
    scores: np.ndarray
    source: np.ndarray
    rank: np.ndarray
    hit_candidate: np.ndarray
    hit_source: np.ndarray
    hit_rank: np.ndarray
    hit_score: np.ndarray
    starved: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    missed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.ids.size)

    def found_by(self, n: int) -> list[Occurrence]:
        """Every list that returned candidate `n`, in list order."""
        lo, hi = np.searchsorted(self.hit_candidate, [n, n + 1])
        return [
            Occurrence(int(s), int(r), float(v))
            for s, r, v in zip(
                self.hit_source[lo:hi], self.hit_rank[lo:hi], self.hit_score[lo:hi], strict=True
            )
        ]


class Merger(Protocol):
    """A merge strategy as the plan calls it: ``(lists [L], budgets [L], total) -> Candidates``."""

    def __call__(self, lists: Sequence[Ranked], budgets: np.ndarray, total: int) -> Candidates: ...


def _check_lists(where: str, lists: Sequence[Ranked]) -> None:
    """Shapes and dtypes, list by list (values are checked over all lists at once:
    `_check_values`)."""
    for i, r in enumerate(lists):
        ids, scores = r
        if (
            not isinstance(ids, np.ndarray)
            or not isinstance(scores, np.ndarray)
            or ids.ndim != 1
            or scores.shape != ids.shape
            or ids.dtype.kind not in "iu"
        ):
            raise RetrievalInputError(
                where,
                f"lists[{i}]",
                "(ids [N] int, scores [N] float)",
                f"({describe(ids)}, {describe(scores)})",
            )


class _Flat(NamedTuple):
    """All occurrences of all lists, list after list: ``[M_all]`` arrays."""

    ids: np.ndarray  # int64
    src: np.ndarray  # int64 list index
    rank: np.ndarray  # int64 rank within the list
    scores: np.ndarray  # float32
    starts: np.ndarray  # [L] int64 offset of each list
    group: np.ndarray  # int64, equal ids share a group (numbered in id order)
    groups: int  # number of distinct ids

    @property
    def distinct(self) -> bool:
        return self.groups == self.ids.size

    def shared(self) -> np.ndarray:
        """Positions of occurrences whose id occurs more than once (ascending)."""
        return np.flatnonzero(np.bincount(self.group, minlength=self.groups)[self.group] > 1)


def _flatten(lists: Sequence[Ranked]) -> _Flat:
    sizes = np.fromiter((r.ids.size for r in lists), dtype=np.int64, count=len(lists))
    starts = np.cumsum(sizes) - sizes
    src = np.repeat(np.arange(len(lists), dtype=np.int64), sizes)
    if src.size == 0:
        return _Flat(src, src, src, np.zeros(0, np.float32), starts, src, 0)
    ids = np.concatenate([r.ids for r in lists]).astype(np.int64, copy=False)
    distinct, group = np.unique(ids, return_inverse=True)
    return _Flat(
        ids,
        src,
        np.arange(src.size, dtype=np.int64) - starts[src],
        np.concatenate([r.scores for r in lists]).astype(np.float32, copy=False),
        starts,
        group.astype(np.int64, copy=False),
        int(distinct.size),
    )


def _check_values(where: str, flat: _Flat) -> None:
    """No ``-1`` padding and no NaN / inf anywhere; the message names the first bad list."""
    if flat.ids.size == 0:
        return
    if flat.ids.min() < 0:
        i = int(flat.src[np.argmax(flat.ids < 0)])
        raise RetrievalInputError(where, f"lists[{i}].ids", "real ids (>= 0)", "-1 padding")
    finite = np.isfinite(flat.scores)
    if not finite.all():
        i = int(flat.src[np.argmin(finite)])
        raise RetrievalInputError(where, f"lists[{i}].scores", "finite scores", "NaN or inf")


def _candidates(
    flat: _Flat, src: np.ndarray, rank: np.ndarray, starved: np.ndarray, missed: np.ndarray
) -> Candidates:
    """Build `Candidates` from the placing (list, rank) of each merged item."""
    at = flat.starts[src] + rank  # [N] position in the flattened arrays
    if flat.distinct:  # no id repeats: each candidate's only occurrence placed it
        hits = at
        cand = np.arange(at.size, dtype=np.int64)
    else:  # every occurrence of a merged id, by candidate then list (flat order is stable)
        of_group = np.full(flat.groups, -1, dtype=np.int64)
        of_group[flat.group[at]] = np.arange(at.size)
        cand = of_group[flat.group]  # [M_all] candidate of each occurrence, -1: not merged
        hits = np.flatnonzero(cand >= 0)
        hits = hits[np.argsort(cand[hits], kind="stable")]
        cand = cand[hits]
    return Candidates(
        ids=flat.ids[at],
        scores=flat.scores[at],
        source=src,
        rank=rank,
        hit_candidate=cand,
        hit_source=flat.src[hits],
        hit_rank=flat.rank[hits],
        hit_score=flat.scores[hits],
        starved=starved,
        missed=missed,
    )


def round_robin_merge(lists: Sequence[Ranked], budgets: np.ndarray, total: int) -> Candidates:
    """Round-robin across embeddings with deduplication (Section 3.5).

    Phase 1, budgets: in rounds, each list in order with budget left takes its
    next item not merged yet (skipping items already placed by another list, and
    recording them as extra sources). A list stops when it has placed
    ``budgets[i]`` items or runs dry.

    Phase 2, redistribution: if fewer than `total` items were placed and some
    lists still have unplaced items (beyond their budget), the budgets are
    lifted and the round-robin continues over those lists, in the same order,
    one new item per list per round. Budget left unused by a list that ran dry
    (short results, duplicates, filtered items) is thus shared evenly by the
    lists that have more.

    An item keeps the first position at which it was placed. The result has
    exactly ``min(total, distinct items in all lists)`` candidates.

    ``Candidates.starved`` marks each list that the walk found dry at one of its
    turns before `total` items were placed: only such a list, searched deeper,
    could change the result (`fill_budget` does so). ``Candidates.missed`` counts
    those turns.

    Implementation: only occurrences of ids shared between lists can be
    skipped, so only they are replayed one by one (in walk order, with a heap);
    everything else is scheduled by one sort on (phase, round, list). The
    result equals the step-by-step walk (tested against a loop reference).

    Args:
        lists: ``L`` ranked lists (`Ranked`: ids ``[n_i]``, scores ``[n_i]``), best first.
        budgets: ``[L]`` non-negative ints, the most each list places in phase 1.
        total: number of candidates wanted.

    >>> a = Ranked(np.array([1, 2, 3, 4]), np.array([1.0, 0.75, 0.5, 0.25]))
    >>> b = Ranked(np.array([2, 5]), np.array([0.875, 0.125]))
    >>> c = round_robin_merge([a, b], np.array([2, 2]), total=5)
    >>> c.ids.tolist(), c.source.tolist(), c.rank.tolist()  # 4 comes in phase 2
    ([1, 2, 3, 5, 4], [0, 1, 0, 1, 0], [0, 0, 2, 1, 3])
    >>> c.found_by(1)  # item 2: placed by list 1 (rank 0), also found by list 0 (rank 1)
    [Occurrence(source=0, rank=1, score=0.75), Occurrence(source=1, rank=0, score=0.875)]
    """
    where = "round_robin_merge"
    _check_lists(where, lists)
    total = non_negative_int(where, "total", total)
    budgets = np.asarray(budgets)
    if (
        budgets.shape != (len(lists),)
        or (budgets.size and budgets.dtype.kind not in "iu")
        or (budgets.size and budgets.min() < 0)
    ):
        raise RetrievalInputError(
            where, "budgets", f"[{len(lists)}] non-negative ints", describe(budgets)
        )
    flat = _flatten(lists)
    _check_values(where, flat)
    kept = np.ones(flat.ids.size, dtype=bool)
    if not flat.distinct:
        kept[_skipped(flat, flat.shared(), budgets.tolist(), total)] = False
    src, rank, starved, missed = _schedule(flat, kept, budgets.astype(np.int64), total)
    return _candidates(flat, src, rank, starved, missed)


def _skipped(flat: _Flat, shared: np.ndarray, budgets: list[int], total: int) -> list[int]:
    """Which occurrences of ids shared between lists the walk skips.

    Only a shared occurrence can be skipped (its id placed earlier by another
    list), and list i reaches rank p in the turn ``(phase, round, i)`` of its
    kept item number ``n = p - skips_i_before_p``: ``(0, n, i)`` while
    ``n < budget_i``, then ``(1, n - budget_i, i)``. So replay just the shared
    occurrences in turn order, one pending per list in a heap: each is placed
    or skipped, and a skip moves the rest of its list one round earlier. A turn
    is packed into one int, ``round' * L + i`` with phase-2 rounds offset past
    every phase-1 round, so the heap compares ints, not tuples.

    When the replay reaches phase 2, every phase-1 skip is known; if phase 1
    alone places `total` items (each list ``min(budget_i, kept_i)``), no phase-2
    turn comes before the walk ends, so the replay stops there: the merge is the
    same, without the occurrences an overfetched list holds past its budget.
    """
    n_lists = len(budgets)
    # shared is ascending and lists are laid out one after another: cut it per list
    cuts = [*np.searchsorted(shared, flat.starts).tolist(), shared.size]
    at, ids, rank = shared.tolist(), flat.ids[shared].tolist(), flat.rank[shared].tolist()
    late = int(flat.rank.max()) + 1  # past every phase-1 round (a round can be as late as a rank)
    sizes = np.diff(flat.starts, append=flat.ids.size).tolist()  # [L] occurrences per list
    heap = []
    for i in range(n_lists):
        if cuts[i] < cuts[i + 1]:
            n, b = rank[cuts[i]], budgets[i]
            heap.append((n if n < b else late + n - b) * n_lists + i)
    heapq.heapify(heap)
    nxt = cuts[:-1]  # [L] position in `shared` of each list's pending occurrence
    skips = [0] * n_lists
    placed: set[int] = set()
    skipped: list[int] = []
    phase_2, checked = late * n_lists, False
    while heap:
        if not checked and heap[0] >= phase_2:
            checked = True
            filled = sum(min(b, n - s) for b, n, s in zip(budgets, sizes, skips, strict=True))
            if filled >= total:  # the walk ends in phase 1
                break
        i = heap[0] % n_lists
        j = nxt[i]
        if ids[j] in placed:
            skipped.append(at[j])
            skips[i] += 1
        else:
            placed.add(ids[j])
        nxt[i] = j = j + 1
        if j < cuts[i + 1]:  # the list's next shared occurrence, in its turn
            n, b = rank[j] - skips[i], budgets[i]
            heapq.heapreplace(heap, (n if n < b else late + n - b) * n_lists + i)
        else:
            heapq.heappop(heap)
    return skipped


def _schedule(
    flat: _Flat, kept: np.ndarray, budgets: np.ndarray, total: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order the kept occurrences as the walk places them: list i places its n-th kept
    item in round n of phase 1 while n < budget_i, then in round n - budget_i of
    phase 2; within a round, lists in order. Also which lists are starved: list i
    wants kept item number ``sizes[i]``, which it lacks, at that item's turn; it is
    starved when that turn comes before the walk ends (the `total`-th placement).
    And how many of its turns it missed: those of items ``sizes[i]``, ``sizes[i] +
    1``, ... that come before the end."""
    n_lists = budgets.size
    src, rank = flat.src[kept], flat.rank[kept]
    sizes = np.bincount(src, minlength=n_lists)  # [L] kept items per list
    nth = np.arange(src.size, dtype=np.int64) - (np.cumsum(sizes) - sizes)[src]  # [M_kept]
    # (phase, round, list) packed in one int: distinct per occurrence, so any sort will do
    # past every phase-1 round: the lists' kept items, their next turns, their budgets
    late = max(int(sizes.max(initial=0)), int(budgets.max(initial=0))) + 1

    def turn(n: np.ndarray, lists: np.ndarray) -> np.ndarray:
        b = budgets[lists]
        return np.where(n < b, n, late + n - b) * n_lists + lists

    turns = turn(nth, src)
    order = np.argsort(turns)[:total]
    wants = turn(sizes, np.arange(n_lists))  # [L] the turn each list would take next
    if total == 0:
        starved = np.zeros(n_lists, dtype=bool)
        missed = np.zeros(n_lists, dtype=np.int64)
    elif order.size < total:  # every list ran dry before `total`: each was asked again
        starved = np.ones(n_lists, dtype=bool)
        missed = np.full(n_lists, total - order.size, dtype=np.int64)
    else:
        end = turns[order[-1]]
        starved = wants < end
        lists = np.arange(n_lists)
        last = (end - 1 - lists) // n_lists  # [L] the last round whose turn comes before
        in_1 = np.minimum(budgets - 1, last) - sizes + 1  # [L] missed phase-1 turns
        in_2 = budgets + last - late - np.maximum(sizes, budgets) + 1  # [L] phase-2 turns
        missed = np.where(starved, in_1.clip(0) + in_2.clip(0), 0)
    return src[order], rank[order], starved, missed


def global_topk_merge(lists: Sequence[Ranked], total: int) -> Candidates:
    """The `total` best items over all lists by score (Section 4.4's alternative).

    The lists are taken as given (the plan bounds each by its search depth), so a
    list is ``starved`` only when the result is short of `total`.

    An item's score is its best score over the lists that found it; it is
    placed by that list (ties: smaller list index, then smaller rank). Items are
    ordered by score descending, ties by smaller id.

    >>> a = Ranked(np.array([1, 2]), np.array([0.75, 0.25]))
    >>> b = Ranked(np.array([2, 5]), np.array([0.875, 0.5]))
    >>> c = global_topk_merge([a, b], total=3)
    >>> c.ids.tolist(), c.source.tolist()
    ([2, 1, 5], [1, 0, 1])
    """
    where = "global_topk_merge"
    _check_lists(where, lists)
    total = non_negative_int(where, "total", total)
    flat = _flatten(lists)
    _check_values(where, flat)
    ids, scores = flat.ids, flat.scores
    by_item = np.lexsort((flat.rank, flat.src, -scores, ids))  # per item: best occurrence first
    first = np.ones(by_item.size, dtype=bool)
    first[1:] = ids[by_item][1:] != ids[by_item][:-1]
    best = by_item[first]  # [U] one occurrence per distinct item
    best = best[np.lexsort((ids[best], -scores[best]))][:total]
    starved = np.full(len(lists), best.size < total)  # short: every list could add items
    missed = np.where(starved, total - best.size, 0).astype(np.int64)
    return _candidates(flat, flat.src[best], flat.rank[best], starved, missed)


def global_topk_merger(lists: Sequence[Ranked], budgets: np.ndarray, total: int) -> Candidates:
    """`global_topk_merge` as a `Merger` for the plan: the budgets have already
    bounded each list through its search depth, so only `total` applies here."""
    return global_topk_merge(lists, total)
