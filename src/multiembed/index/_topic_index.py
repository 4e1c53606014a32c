"""Topic-restricted search for explicit (topic-conditioned) embeddings.

Why not one ANN index with a filter: on 1M items (``bench/serve_latency.py``, its
``topic_search`` lines; one idle 2-core AMD EPYC, 2 search threads), HNSW
top-1000-then-filter finds a small topic's items (median 426) when the query
points into the topic (recall@100 1.0) but collapses to ~0.001 when it does
not, because the graph walk never reaches the topic's region, and it costs
~0.9 ms; an exact scan of the topic's items, stored contiguously, gives recall
1.0 in ~0.06-0.1 ms.

So every topic is a contiguous block of vectors, sorted by item id, and:

- a topic of at most `exact_max_items` items is searched exactly in its block
  (a matrix-vector product and a top-k: ~0.06-0.1 ms for 430 items, ~0.55 ms
  for 21,000, ~2.2-2.6 ms for 100,000);
- a larger topic, when an ANN index over all items is given, is searched there
  and post-filtered by membership, searching deeper (depth ``2k``, then times
  `growth`) until `k` in-topic items are found (or all of the topic's). A
  topic-conditioned query points into its topic, so few hits are filtered; how
  many is reported per query. When the observed in-topic rate says that `k`
  hits would need more than `max_depth`, the query does not match its topic
  and the block is scanned exactly instead (`TopicHits.fallback`): recall stays
  1.0 and the cost stays bounded. Measured on topics of ~100,000 items: 0.49 ms
  and recall 1.0 for a matching query (against ~2.5 ms for the exact scan);
  1.9 ms and recall 1.0 through the fallback for a query that misses its topic
  (HNSW-then-filter alone: recall 0.21). On topics of ~21,000 items: 0.34 ms
  matching, 0.84 ms missing, recall 1.0 both.

A topic goes to the ANN index when it holds more than `exact_max_items` items
(10,000 by default) and more than `ITEMS_PER_DEPTH` items per unit of the first
ANN depth: the depth grows with `k`, and a walk often goes deeper or falls back
to the scan. With budgets of a few hundred per list, topics up to about 500,000
items are scanned (0.1-4 ms at width 32) instead of walked (1-5 ms, then often
scanned anyway when the query misses its topic); larger topics search the ANN
index, where their first search joins the request's batched call of implicit
rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from multiembed.index._checks import check_int, check_vectors, describe
from multiembed.index._hits import Hits, empty_hits, top_positions, topk_by_score
from multiembed.index._protocol import VectorIndex
from multiembed.index._store import (
    Manifest,
    check_loaded,
    save_index,
    verify,
    write_arrays,
)
from multiembed.index._topics import ItemTopics
from multiembed.index.errors import IndexInputError, IndexIntegrityError

_FILES = ("topics.npy", "offsets.npy", "items.npy", "vectors.npy")
_SETTINGS = ("exact_max_items", "growth", "max_depth", "items_per_depth")  # saved as params

ITEMS_PER_DEPTH = 1000
"""A topic goes to the ANN index only when it holds more than this many items per
unit of the first ANN depth (``2k``): below that, scanning the block costs less
than the walk. One query on 200,000 items of width 32 (HNSW32, one thread, 2-core
AMD EPYC): the walk to depth 500 took 0.86 ms and to 2,048 4.8 ms, the scan of
50,000 items 0.28 ms and of 100,000 0.72 ms: the first walk costs as much as a
scan of about 300 items per unit of depth. It is seldom the only walk: on the
1M-item latency benchmark (budget 1000, topics up to 270,000 items), 43 % of the
walked rows fell back to a scan of their block and 28 % were walked deeper. At
1,000, whole requests' p90 was 13.2-14.5 ms against 17.9-19.8 ms at 200 and
20.6-21.3 ms routing by size alone (``bench/serve_latency.py --items-per-depth``);
explicit recall@100 1.0 either way."""


class TopicHits(NamedTuple):
    """Result of `TopicIndex.search` for `Q` (query, topic) pairs.

    Attributes:
        hits: `Hits` ``[Q, k]``: only items carrying the query's topic, padded.
        ann: ``[Q]`` bool, True where the ANN-then-filter route served the query.
        depth: ``[Q]`` int64, depth of the last ANN search (0 for an exact scan).
        filtered: ``[Q]`` int64, ANN hits examined and dropped for lacking the topic.
        fallback: ``[Q]`` bool, True where the ANN could not supply `k` in-topic hits
            within `max_depth` and the topic's block was scanned exactly instead.
    """

    hits: Hits
    ann: np.ndarray
    depth: np.ndarray
    filtered: np.ndarray
    fallback: np.ndarray


class TopicIndex:
    """Exact per-topic blocks, with ANN plus post-filter for topics above a size threshold.

    Args:
        item_topics: membership; block ``t`` holds ``item_topics.members(t)``.
        vectors: ``[M, D]`` float32, row ``m`` is the vector of ``item_topics.items[m]``
            (items with several topics repeat). Use `build` to gather them.
        ann: an index over all items used for topics larger than `exact_max_items`;
            None: every topic is scanned exactly.
        exact_max_items: largest topic scanned exactly when `ann` is given. 10,000 by
            default: the scan of a 10k-50k topic is memory-bound (up to ~0.5 ms) while its
            ANN search joins the implicit rows' batched call; on the 1M-item benchmark
            this keeps explicit recall@100 at 0.995 and cuts the request's p90 by ~0.1 ms.
        growth: factor by which the ANN depth grows while too few hits are in topic.
        max_depth: deepest ANN search (at least `k`) before falling back to a scan.
        items_per_depth: a topic also needs more than this many items per unit of
            the first ANN depth (`ann_depth`) to go to `ann` (`ITEMS_PER_DEPTH`); 0
            routes by `exact_max_items` alone.

    >>> it = ItemTopics.from_pairs(np.array([1, 2, 3, 2]), np.array([7, 7, 7, 8]))
    >>> vecs = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    >>> index = TopicIndex.build(np.array([1, 2, 3]), vecs, it)
    >>> res = index.search(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([7, 8]), k=2)
    >>> res.hits.ids.tolist(), res.ann.tolist()
    ([[2, 3], [2, -1]], [False, False])
    """

    backend = "topic"
    hits_in_topic = True
    """Every hit of `search` carries its row's topic (a block scan, or ANN hits kept by
    membership), so a plan need not filter them again (`multiembed.retrieve`)."""

    def __init__(
        self,
        item_topics: ItemTopics,
        vectors: np.ndarray,
        *,
        ann: VectorIndex | None = None,
        exact_max_items: int = 10_000,
        growth: int = 4,
        max_depth: int = 2048,
        items_per_depth: int = ITEMS_PER_DEPTH,
    ) -> None:
        if not isinstance(vectors, np.ndarray) or vectors.ndim != 2:
            raise IndexInputError(
                "TopicIndex", "vectors", "a [M, D] float array", describe(vectors)
            )
        self.item_topics = item_topics
        self._vectors = check_vectors("TopicIndex", "vectors", vectors, vectors.shape[1])
        if self._vectors.shape[0] != item_topics.items.size:
            raise IndexInputError(
                "TopicIndex",
                "vectors",
                f"one row per (item, topic) pair: [{item_topics.items.size}, D]",
                describe(vectors),
            )
        if ann is not None and ann.dim != self.dim:
            raise IndexInputError("TopicIndex", "ann", f"an index of dim {self.dim}", str(ann.dim))
        self.ann = ann
        self.exact_max_items = check_int("TopicIndex", "exact_max_items", exact_max_items)
        self.growth = check_int("TopicIndex", "growth", growth, 2)
        self.max_depth = check_int("TopicIndex", "max_depth", max_depth)
        self.items_per_depth = check_int("TopicIndex", "items_per_depth", items_per_depth, 0)

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        item_topics: ItemTopics,
        *,
        ann: VectorIndex | None = None,
        exact_max_items: int = 10_000,
        growth: int = 4,
        max_depth: int = 2048,
        items_per_depth: int = ITEMS_PER_DEPTH,
    ) -> TopicIndex:
        """Gather `vectors` ``[C, D]`` of items `ids` ``[C]`` into per-topic blocks.

        Raises:
            IndexInputError: a member of `item_topics` has no vector in `ids`.
        """
        if not isinstance(ids, np.ndarray) or ids.ndim != 1 or not isinstance(vectors, np.ndarray):
            raise IndexInputError("TopicIndex.build", "ids", "a [C] integer array", describe(ids))
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        pos = np.minimum(np.searchsorted(sorted_ids, item_topics.items), max(ids.size - 1, 0))
        found = sorted_ids[pos] == item_topics.items if ids.size else np.zeros(0, dtype=bool)
        if not found.all():
            missing = item_topics.items[~found] if ids.size else item_topics.items
            raise IndexInputError(
                "TopicIndex.build",
                "ids",
                "a vector for every item that carries a topic",
                f"{missing.size} pair(s) without one, e.g. item {int(missing[0])}",
            )
        return cls(
            item_topics,
            np.asarray(vectors)[order[pos]],
            ann=ann,
            exact_max_items=exact_max_items,
            growth=growth,
            max_depth=max_depth,
            items_per_depth=items_per_depth,
        )

    @property
    def dim(self) -> int:
        """`D`."""
        return int(self._vectors.shape[1])

    @property
    def size(self) -> int:
        """`M`, the number of (item, topic) pairs stored."""
        return int(self._vectors.shape[0])

    def uses_ann(self, topic: int, k: int) -> bool:
        """Whether `search` at depth `k` serves `topic` by ANN-then-filter rather than a scan."""
        return bool(self._routed(np.array([self.item_topics.size_of(topic)]), k)[0])

    def ann_rows(self, topics: np.ndarray, k: int) -> np.ndarray:
        """``[Q]`` bool: the rows of `topics` ``[Q]`` that `search` at depth `k` serves by
        ANN-then-filter."""
        starts, stops = self.item_topics.blocks(topics)
        return self._routed(stops - starts, k)

    def _routed(self, sizes: np.ndarray, k: int) -> np.ndarray:
        """``[Q]`` bool: blocks of `sizes` items above `exact_max_items` and above
        `items_per_depth` times the first ANN depth: a scan of fewer costs less than
        the graph walk."""
        if self.ann is None:
            return np.zeros(sizes.shape, dtype=bool)
        return sizes > max(self.exact_max_items, self.items_per_depth * self.ann_depth(k))

    def ann_depth(self, k: int) -> int:
        """Depth of the first ANN search of an `ann_rows` row when `search` runs at depth `k`.

        ``2k`` (so that `k` in-topic hits survive the filter when at most half are
        off-topic), at most ``max(max_depth, k)`` and the ANN index's size; 0 without one.
        """
        if self.ann is None:
            return 0
        return min(self.ann.size, max(self.max_depth, k), 2 * k)

    def search(
        self, queries: np.ndarray, topics: np.ndarray, k: int, *, ann_hits: Hits | None = None
    ) -> TopicHits:
        """Top-`k` items carrying ``topics[q]`` for each of `queries` ``[Q, D]``.

        Args:
            queries: ``[Q, D]`` float, one topic-conditioned embedding per row.
            topics: ``[Q]`` int, the topic of each row (an unknown topic gives no hits).
            k: depth.
            ann_hits: the first ANN search of the `ann_rows` rows, done by the caller:
                `Hits` ``[A, >= ann_depth(k)]`` of ``queries[ann_rows(topics)]`` in `ann`
                (a plan batches them with its other searches of `ann`, so that the
                threads of one FAISS call share them). None: search them here.
        """
        where = "TopicIndex.search"
        queries = check_vectors(where, "queries", queries, self.dim)
        k = check_int(where, "k", k)
        topics = np.asarray(topics)
        if topics.shape != (queries.shape[0],) or not np.issubdtype(topics.dtype, np.integer):
            raise IndexInputError(
                where, "topics", f"a [{queries.shape[0]}] int array", describe(topics)
            )
        q = queries.shape[0]
        out = TopicHits(
            empty_hits(q, k),
            np.zeros(q, bool),
            np.zeros(q, np.int64),
            np.zeros(q, np.int64),
            np.zeros(q, bool),
        )
        starts, stops = self.item_topics.blocks(topics)  # [Q], [Q]
        routed = self._routed(stops - starts, k)
        rows = np.flatnonzero(routed)
        if ann_hits is not None:
            depth = self.ann_depth(k)
            if (
                not isinstance(ann_hits, Hits)
                or ann_hits.ids.ndim != 2
                or ann_hits.ids.shape[0] != rows.size
                or ann_hits.ids.shape[1] < depth
            ):
                got = describe(ann_hits.ids) if isinstance(ann_hits, Hits) else describe(ann_hits)
                raise IndexInputError(
                    where, "ann_hits", f"Hits [{rows.size}, >= {depth}] of the ANN rows", got
                )
            ann_hits = Hits(ann_hits.ids[:, :depth], ann_hits.scores[:, :depth])
        self._scan(queries, topics, np.flatnonzero(~routed), k, out, starts, stops)
        if self.ann is not None and rows.size:
            self._search_ann(self.ann, queries, topics, k, rows, out, ann_hits)
        return out

    def _scan(
        self,
        queries: np.ndarray,
        topics: np.ndarray,
        rows: np.ndarray,
        k: int,
        out: TopicHits,
        starts: np.ndarray | None = None,
        stops: np.ndarray | None = None,
    ) -> None:
        """Exact top-k of `rows` within their topics' blocks (one product per topic).

        `starts` / `stops` ``[Q]``: the rows' blocks, when the caller has them.
        """
        if starts is None or stops is None:
            starts, stops = self.item_topics.blocks(topics)
        by_topic: dict[int, list[int]] = {}
        for r, t in zip(rows.tolist(), topics[rows].tolist(), strict=True):
            by_topic.setdefault(t, []).append(r)
        items = self.item_topics.items
        for group in by_topic.values():
            start, stop = int(starts[group[0]]), int(stops[group[0]])
            if stop <= start:
                continue
            scores = queries[group] @ self._vectors[start:stop].T  # [q_t, B]
            if len(group) == 1:  # the usual case: one query per topic, no [Q, k] bookkeeping
                r, pos = group[0], top_positions(scores[0], k)
                out.hits.ids[r, : pos.size] = items[start + pos]
                out.hits.scores[r, : pos.size] = scores[0, pos]
            else:
                got = topk_by_score(scores, items[start:stop], k)
                out.hits.ids[group], out.hits.scores[group] = got.ids, got.scores

    def _search_ann(
        self,
        ann: VectorIndex,
        queries: np.ndarray,
        topics: np.ndarray,
        k: int,
        rows: np.ndarray,
        out: TopicHits,
        first: Hits | None = None,
    ) -> None:
        """ANN, then keep the hits that carry the topic; search deeper while the
        observed in-topic rate promises `k` within `max_depth`, else scan exactly.
        `first`: the first round's hits of `rows`, already searched (at `ann_depth`)."""
        cap = min(ann.size, max(self.max_depth, k))
        depth = self.ann_depth(k)
        pending = rows
        while pending.size:
            res = ann.search(queries[pending], depth) if first is None else first
            first = None
            again, scan = [], []
            for i, r in enumerate(pending):
                topic = int(topics[r])
                found = res.row(i)
                keep = np.flatnonzero(self.item_topics.contains(found.ids, topic))
                want = min(k, self.item_topics.size_of(topic))
                out.ann[r], out.depth[r] = True, depth
                if keep.size >= want:
                    keep = keep[:want]
                    out.hits.ids[r, :want] = found.ids[keep]
                    out.hits.scores[r, :want] = found.scores[keep]
                    out.filtered[r] = int(keep[-1]) + 1 - want if want else 0
                elif depth < cap and keep.size and depth * want <= cap * keep.size:
                    again.append(r)  # at this rate, `want` in-topic hits lie within the cap
                else:
                    out.fallback[r] = True
                    out.filtered[r] = found.ids.size - keep.size
                    scan.append(r)
            if scan:
                self._scan(queries, topics, np.array(scan, dtype=np.int64), k, out)
            pending = np.array(again, dtype=np.int64)
            depth = min(cap, depth * self.growth)

    # ------------------------------------------------------------------ files
    def save(self, directory: str | Path, *, model_version: str) -> Manifest:
        """Write the blocks and the manifest into `directory` (the ANN index saves itself)."""
        it = self.item_topics
        arrays = dict(zip(_FILES, (it.topics, it.offsets, it.items, self._vectors), strict=True))
        params = {name: getattr(self, name) for name in _SETTINGS}
        params["topics"] = int(it.topics.size)
        return save_index(directory, self, model_version, lambda p: write_arrays(p, arrays), params)

    @classmethod
    def load(
        cls, directory: str | Path, *, expected_model_version: str, ann: VectorIndex | None = None
    ) -> TopicIndex:
        """Read a topic index written by `save`; `ann` is the (separately loaded) item index.

        Raises:
            IndexIntegrityError: missing, truncated or altered file; another model version.
        """
        path = Path(directory)
        manifest = verify(
            path, backend=cls.backend, expected_model_version=expected_model_version, files=_FILES
        )
        topics, offsets, items, vectors = (np.load(path / n, allow_pickle=False) for n in _FILES)
        check_loaded(path, manifest, count=vectors.shape[0], dim=vectors.shape[1])
        p = manifest.params
        try:
            settings = {n: p[n] for n in _SETTINGS[:-1]}
            # an index saved before the rule routed by size alone
            settings["items_per_depth"] = p.get("items_per_depth", 0)
            return cls(ItemTopics(topics, offsets, items), vectors, ann=ann, **settings)
        except (KeyError, IndexInputError) as err:
            raise IndexIntegrityError(path, f"inconsistent topic index: {err}") from err
