"""The searches behind one request's lists: the item index, the topic searcher, the filter.

`RequestSearch.first` searches every list at its first depth, batching the rows
that go to the plan's item index into one call; calling the object searches
some lists deeper (`multiembed.retrieve.fill_budget` asks for the starved ones).
Lists are numbered in round-robin order: implicit rows, then explicit rows.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import numpy as np

from multiembed.index import Hits, ItemTopics, Ranked, TopicHits, VectorIndex
from multiembed.retrieve._fill import Searched
from multiembed.retrieve._topics import relevance_filter_rows
from multiembed.retrieve.errors import RetrievalInputError


class TopicSearcher(Protocol):
    """What the plan needs for explicit lists (`multiembed.index.TopicIndex`)."""

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

    def ann_rows(self, topics: np.ndarray) -> np.ndarray: ...

    def ann_depth(self, k: int) -> int: ...

    def search(
        self, queries: np.ndarray, topics: np.ndarray, k: int, *, ann_hits: Hits | None = None
    ) -> TopicHits: ...


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
    res: TopicHits, topics: np.ndarray, depths: np.ndarray, item_topics: ItemTopics
) -> tuple[list[Ranked], list[int]]:
    """The explicit lists: row ``t`` cut to ``depths[t]``, then the relevance filter for
    ``topics[t]``; and the hits each list lost (in the search and in the filter)."""
    cut = _cut(res.hits, depths)
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


class RequestSearch:
    """Search one request's lists: ``L_im`` implicit rows, then ``L_ex`` explicit rows.

    Implicit rows search `index`. Explicit rows search inside their topic through
    `topic_index`, then pass the relevance filter (Section 3.3.3); with
    ``relevance_filter=False`` they search `explicit_index` instead (the whole item
    set, no filter), which defaults to `index`.

    Args:
        index: the item index of the implicit embeddings.
        implicit: ``[L_im, D]`` implicit queries.
        explicit: ``[L_ex, D]`` explicit queries.
        topics: ``[L_ex]`` the topic of each explicit query.
        topic_index: the topic searcher (needed with explicit rows and the filter on).
        explicit_index: the item index of the explicit embeddings without the filter.
        relevance_filter: search explicit rows inside their topics.
        clock: stage timer.
    """

    def __init__(
        self,
        *,
        index: VectorIndex,
        implicit: np.ndarray,
        explicit: np.ndarray,
        topics: np.ndarray,
        topic_index: TopicSearcher | None,
        explicit_index: VectorIndex | None,
        relevance_filter: bool,
        clock: Clock,
    ) -> None:
        self.index = index
        self.implicit, self.explicit = implicit, explicit
        self.n_im = implicit.shape[0]
        self.topics = topics
        self.topic_index = topic_index
        self.filter = relevance_filter
        self.explicit_index = index if explicit_index is None else explicit_index
        self.clock = clock
        self.refilling = False

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
        if self.filter or self.explicit_index is not self.index:
            return rows < self.n_im
        return np.ones(rows.size, dtype=bool)

    def _sharer(self) -> SharedAnnSearcher | None:
        t = self.topic_index
        if getattr(t, "ann", None) is self.index and isinstance(t, SharedAnnSearcher):
            return t
        return None

    def first(self, depths: np.ndarray) -> Searched:
        """Every list at ``depths [L]``; one `index` call for all the rows it serves.

        When the topic searcher sends huge topics to this same `index` (a
        `SharedAnnSearcher`, e.g. a `TopicIndex` built with ``ann=index``), the
        first search of those explicit rows joins that call, so that one FAISS call
        (and its threads) serves every graph query of the request; the result is
        the same.
        """
        rows = np.arange(depths.size)
        ex = rows[~self._in_index(rows)]
        sharer = self._sharer() if self.filter and ex.size else None
        ann_rows = np.zeros(0, np.int64)
        ex_k = int(depths[ex].max()) if ex.size else 0
        if sharer is not None:
            ann_rows = ex[sharer.ann_rows(self.topics[ex - self.n_im])]
        extra = (ann_rows, np.full(ann_rows.size, sharer.ann_depth(ex_k) if sharer else 0))
        got = self._search(rows, depths, ann=extra)
        return got

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
        lists: list[Ranked] = [Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))] * rows.size
        more = np.zeros(rows.size, dtype=bool)
        filtered = np.zeros(rows.size, dtype=np.int64)
        at = np.flatnonzero(self._in_index(rows))  # positions in `rows`
        ann_rows, ann_depths = ann if ann is not None else (np.zeros(0, np.int64),) * 2
        ann_hits = None
        if at.size or ann_rows.size:
            q = np.concatenate([rows[at], ann_rows])
            d = np.concatenate([depths[at], ann_depths]).astype(np.int64)
            hits = self.index.search(self._queries(q), int(d.max()), depths=d)
            mine = Hits(hits.ids[: at.size], hits.scores[: at.size])
            for j, r in zip(at.tolist(), _cut(mine, depths[at]), strict=True):
                lists[j] = r
            more[at] = _reached(mine, depths[at]) & (depths[at] < self.index.size)
            if ann_rows.size:
                ann_hits = Hits(hits.ids[at.size :], hits.scores[at.size :])
        self._lap("search_implicit")
        ex = np.flatnonzero(~self._in_index(rows))
        if ex.size == 0:
            return Searched(lists, more, filtered)
        queries, d = self._queries(rows[ex]), depths[ex]
        if not self.filter:  # the whole item set of the explicit embeddings
            hits = self.explicit_index.search(queries, int(d.max()), depths=d)
            for j, r in zip(ex.tolist(), _cut(hits, d), strict=True):
                lists[j] = r
            more[ex] = _reached(hits, d) & (d < self.explicit_index.size)
            self._lap("search_explicit")
            return Searched(lists, more, filtered)
        searcher = self.topic_index
        if searcher is None:
            raise RetrievalInputError(
                "plan_request", "topic_index", "a TopicSearcher for explicit queries", "None"
            )
        topics = self.topics[rows[ex] - self.n_im]
        sharer = self._sharer()
        if ann_hits is not None and sharer is not None:
            res = sharer.search(queries, topics, int(d.max()), ann_hits=ann_hits)
        else:
            res = searcher.search(queries, topics, int(d.max()))
        self._lap("search_explicit")
        kept, dropped = _filtered(res, topics, d, searcher.item_topics)
        for j, r in zip(ex.tolist(), kept, strict=True):
            lists[j] = r
        more[ex] = _reached(res.hits, d)
        filtered[ex] = dropped
        self._lap("filter")
        return Searched(lists, more, filtered)
