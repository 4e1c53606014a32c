"""The searches behind one request's lists: the item index, the topic searcher, the filter.

`RequestSearch.first` searches every list at its first depth, batching the rows
that go to the plan's item index into one call; calling the object searches
some lists deeper (`multiembed.retrieve.fill_budget` asks for the starved ones).
Lists are numbered in round-robin order: implicit rows, then explicit rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from multiembed.index import Hits, ItemTopics, Ranked, TopicHits, VectorIndex
from multiembed.retrieve._fill import Searched
from multiembed.retrieve._topics import relevance_filter_rows


class TopicSearcher(Protocol):
    """What the plan needs for explicit lists (`multiembed.index.TopicIndex`).

    A searcher whose hits carry their row's topic by construction says so with a
    true ``hits_in_topic`` attribute (`TopicIndex` does): the plan then takes its
    hits as the relevance filter would leave them, without checking each one. Without
    the attribute every hit goes through the filter.
    """

    @property
    def item_topics(self) -> ItemTopics: ...

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> TopicHits: ...


@runtime_checkable
class SharedAnnSearcher(Protocol):
    """A `TopicSearcher` that sends some topics to an item index, ``ann``, and lets the
    caller run their first search there (`multiembed.index.TopicIndex`).

    When ``ann`` is the plan's own index, the plan adds those rows (`ann_rows`, at
    depth `ann_depth`) to its implicit search: one FAISS call for every graph
    query of the request, whose rows its threads share; the searcher then starts
    from ``ann_hits``.
    """

    ann: VectorIndex | None

    @property
    def item_topics(self) -> ItemTopics: ...

    def ann_rows(self, topics: np.ndarray, k: int) -> np.ndarray: ...

    def ann_depth(self, k: int) -> int: ...

    def search(
        self, queries: np.ndarray, topics: np.ndarray, k: int, *, ann_hits: Hits | None = None
    ) -> TopicHits: ...


def shared_searcher(
    topic_index: TopicSearcher | None, index: VectorIndex
) -> SharedAnnSearcher | None:
    """`topic_index` as a `SharedAnnSearcher` when its ``ann`` is `index` itself (the plan
    may then join those topics' first search to its own call); None otherwise."""
    if isinstance(topic_index, SharedAnnSearcher) and topic_index.ann is index:
        return topic_index
    return None


class Clock:
    """Wall time per stage in milliseconds; a stage timed twice adds up."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self._t) * 1e3
        self._t = now


def _cut(hits: Hits, depths: np.ndarray) -> list[Ranked]:
    """Row ``q`` of `hits` ``[Q, k]`` cut to its first ``depths[q]`` hits, padding removed.

    >>> h = Hits(np.array([[4, 5, 6], [7, -1, -1]]), np.array([[3.0, 2, 1], [5, -np.inf, -np.inf]]))
    >>> [r.ids.tolist() for r in _cut(h, np.array([2, 3]))]
    [[4, 5], [7]]
    """
    out = []
    for q, d in enumerate(depths.tolist()):
        ids, scores = hits.ids[q, :d], hits.scores[q, :d]
        if d and ids[-1] < 0:  # -1 padding sits at the end of a row: keep what is before
            n = int(np.count_nonzero(ids >= 0))
            ids, scores = ids[:n], scores[:n]
        out.append(Ranked(ids, scores))
    return out


def _filtered(
    res: TopicHits,
    topics: np.ndarray,
    depths: np.ndarray,
    item_topics: ItemTopics,
    *,
    in_topic: bool = False,
) -> tuple[list[Ranked], list[int]]:
    """The explicit lists: row ``t`` cut to ``depths[t]``, then the relevance filter for
    ``topics[t]``; and the hits each list lost (in the search and in the filter).
    `in_topic`: the searcher's hits carry their topic already (nothing to drop)."""
    cut = _cut(res.hits, depths)
    if in_topic:
        return cut, res.filtered.tolist()
    width = max(r.ids.size for r in cut)
    keep = relevance_filter_rows(res.hits.ids[:, :width], topics, item_topics)  # [T, width]
    lists, dropped = [], []
    for t, row in enumerate(cut):
        kept = keep[t, : row.ids.size]
        lists.append(Ranked(row.ids[kept], row.scores[kept]))
        dropped.append(int(res.filtered[t]) + row.ids.size - int(np.count_nonzero(kept)))
    return lists, dropped


def _reached(hits: Hits, depths: np.ndarray) -> np.ndarray:
    """``[Q]`` bool: row ``q`` has at least ``depths[q]`` real hits (it may hold more)."""
    return (hits.ids >= 0).sum(axis=1) >= depths


@dataclass(kw_only=True, eq=False)
class RequestSearch:
    """Search one request's lists: ``L_im`` implicit rows, then ``L_ex`` explicit rows.

    Implicit rows search `index`. Explicit rows search inside their topic through
    `topic_index`, then pass the relevance filter (Section 3.3.3); with
    ``relevance_filter=False`` they search `explicit_index` instead (the whole item
    set, no filter; the plan passes `index` when there is no other).

    Attributes:
        index: the item index of the implicit embeddings.
        implicit: ``[L_im, D]`` implicit queries.
        explicit: ``[L_ex, D]`` explicit queries.
        topics: ``[L_ex]`` the topic of each explicit query.
        topic_index: the topic searcher (needed with explicit rows and the filter on).
        explicit_index: the item index of the explicit embeddings without the filter.
        relevance_filter: search explicit rows inside their topics.
        clock: stage timer.
        refilling: set by the first deeper search (its time counts as ``refill``).
    """

    index: VectorIndex
    implicit: np.ndarray
    explicit: np.ndarray
    topics: np.ndarray
    topic_index: TopicSearcher | None
    explicit_index: VectorIndex
    relevance_filter: bool
    clock: Clock
    refilling: bool = False

    def __post_init__(self) -> None:
        self.n_im = self.implicit.shape[0]
        self.sharer = (
            shared_searcher(self.topic_index, self.index) if self.relevance_filter else None
        )

    def _lap(self, stage: str) -> None:
        self.clock.lap("refill" if self.refilling else stage)

    def _queries(self, rows: np.ndarray) -> np.ndarray:
        """The query of each of `rows` ``[R]`` (implicit rows before explicit ones)."""
        im = rows < self.n_im
        if im.all():
            return self.implicit[rows]
        if not im.any():
            return self.explicit[rows - self.n_im]
        return np.concatenate([self.implicit[rows[im]], self.explicit[rows[~im] - self.n_im]])

    def _in_index(self, rows: np.ndarray) -> np.ndarray:
        """``[R]`` bool: rows searched in `index` (implicit; explicit ones sharing it)."""
        if self.relevance_filter or self.explicit_index is not self.index:
            return rows < self.n_im
        return np.ones(rows.size, dtype=bool)

    def reach(self) -> np.ndarray:
        """``[L]`` int64, the most items each list's source holds: the index's size for
        implicit rows (and explicit ones searching an item index), the topic's size
        for explicit rows under the relevance filter (`first_depths` sizes the first
        searches with it)."""
        reach = np.full(self.n_im + self.topics.size, self.index.size, dtype=np.int64)
        if self.topics.size and not self.relevance_filter:
            reach[self.n_im :] = self.explicit_index.size
        elif self.topics.size and self.topic_index is not None:
            starts, stops = self.topic_index.item_topics.blocks(self.topics)
            reach[self.n_im :] = stops - starts
        return reach

    def first(self, depths: np.ndarray) -> Searched:
        """Every list at ``depths [L]``; one `index` call for all the rows it serves, those
        a `SharedAnnSearcher` over this same `index` sends there included."""
        rows = np.arange(depths.size)
        ex = rows[~self._in_index(rows)]
        sharer = self.sharer if ex.size else None
        ann_rows = np.zeros(0, np.int64)
        ex_k = int(depths[ex].max()) if ex.size else 0
        if sharer is not None:
            ann_rows = ex[sharer.ann_rows(self.topics[ex - self.n_im], ex_k)]
        extra = (ann_rows, np.full(ann_rows.size, sharer.ann_depth(ex_k) if sharer else 0))
        return self._search(rows, depths, ann=extra)

    def __call__(self, rows: np.ndarray, depths: np.ndarray) -> Searched:
        """Lists `rows` ``[R]`` searched again to ``depths [R]`` (timed as ``refill``)."""
        self.refilling = True
        return self._search(rows, depths)

    def _search(
        self,
        rows: np.ndarray,
        depths: np.ndarray,
        *,
        ann: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Searched:
        """Lists `rows` ``[R]`` at ``depths [R]``: those in `index` in one call (with the
        `ann` rows and depths a `SharedAnnSearcher` asked for), then the explicit ones."""
        lists: list[Ranked] = [Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))] * rows.size
        out = Searched(lists, np.zeros(rows.size, dtype=bool), np.zeros(rows.size, dtype=np.int64))
        in_index = self._in_index(rows)
        at, ex = np.flatnonzero(in_index), np.flatnonzero(~in_index)  # positions in `rows`
        ann_rows, ann_depths = ann if ann is not None else (np.zeros(0, np.int64),) * 2
        ann_hits = None
        if at.size or ann_rows.size:
            part, ann_hits = self._search_index(rows[at], depths[at], ann_rows, ann_depths)
            _place(out, lists, at, part)
        self._lap("search_implicit")
        if ex.size and not self.relevance_filter:  # the whole item set of the explicit embeddings
            _place(out, lists, ex, self._search_unfiltered(rows[ex], depths[ex]))
        elif ex.size:
            _place(out, lists, ex, self._search_topics(rows[ex], depths[ex], ann_hits))
        return out

    def _search_index(
        self, rows: np.ndarray, depths: np.ndarray, ann_rows: np.ndarray, ann_depths: np.ndarray
    ) -> tuple[Searched, Hits | None]:
        """Lists `rows` searched in `index` in one call with `ann_rows` (at `ann_depths`);
        also the hits of those (None without them)."""
        q = np.concatenate([rows, ann_rows])
        d = np.concatenate([depths, ann_depths]).astype(np.int64)
        hits = self.index.search(self._queries(q), int(d.max()), depths=d)
        n = rows.size
        mine = Hits(hits.ids[:n], hits.scores[:n])
        more = _reached(mine, depths) & (depths < self.index.size)
        part = Searched(_cut(mine, depths), more, np.zeros(n, np.int64))
        return part, (Hits(hits.ids[n:], hits.scores[n:]) if ann_rows.size else None)

    def _search_unfiltered(self, rows: np.ndarray, depths: np.ndarray) -> Searched:
        """Explicit lists `rows` searched in `explicit_index`, without the filter."""
        hits = self.explicit_index.search(self._queries(rows), int(depths.max()), depths=depths)
        more = _reached(hits, depths) & (depths < self.explicit_index.size)
        self._lap("search_explicit")
        return Searched(_cut(hits, depths), more, np.zeros(rows.size, np.int64))

    def _search_topics(
        self, rows: np.ndarray, depths: np.ndarray, ann_hits: Hits | None
    ) -> Searched:
        """Explicit lists `rows` searched inside their topics, then filtered; a
        `SharedAnnSearcher` starts from `ann_hits`, its rows' search in `index`."""
        searcher = self.topic_index
        assert searcher is not None  # `plan_request` refuses explicit rows without one
        queries, k = self._queries(rows), int(depths.max())
        topics = self.topics[rows - self.n_im]
        if ann_hits is not None and self.sharer is not None:
            res = self.sharer.search(queries, topics, k, ann_hits=ann_hits)
        else:
            res = searcher.search(queries, topics, k)
        self._lap("search_explicit")
        in_topic = getattr(searcher, "hits_in_topic", False) is True
        kept, dropped = _filtered(res, topics, depths, searcher.item_topics, in_topic=in_topic)
        self._lap("filter")
        return Searched(kept, _reached(res.hits, depths), np.asarray(dropped, np.int64))


def _place(out: Searched, lists: list[Ranked], at: np.ndarray, part: Searched) -> None:
    """Lists `part` into positions `at` of `out` (whose ``lists`` is `lists`)."""
    for j, r in zip(at.tolist(), part.lists, strict=True):
        lists[j] = r
    out.more[at] = part.more
    out.filtered[at] = part.filtered
