"""Recall studies of `serve_latency.py`: what the plan's ANN searches found against exact search.

- `recall_with_ties`: recall of ANN rows against exact rows, ties at the k-th score
  counted as found;
- `plan_recall`: recall@100 of every search one batch of requests made, by kind
  (implicit rows against an exact scan of the corpus, explicit rows against an
  exact scan of their topic), through recording wrappers of the indexes;
- `topic_study`: exact per-topic blocks vs HNSW top-1000-then-filter vs the
  `TopicIndex` route, by topic size;
- `Unshared`: a `TopicIndex` the plan cannot batch with the implicit rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from latency_world import World, unit
from multiembed.index import (
    ExactIndex,
    FaissIndex,
    Hits,
    ItemTopics,
    Ranked,
    TopicIndex,
    VectorIndex,
)
from multiembed.retrieve import TopicSearcher


def recall_with_ties(
    got: Hits, want: Hits, upto: np.ndarray | None = None, atol: float = 1e-5
) -> np.ndarray:
    """[Q] recall of each row of `got` against `want` (ties at the k-th score count);
    row q compared on its first ``upto[q]`` hits only (the depth it was searched to)."""
    k = want.ids.shape[1]
    out = np.zeros(want.ids.shape[0])
    for q in range(want.ids.shape[0]):
        row, ref = got.row(q), want.row(q)
        if upto is not None:
            k = min(want.ids.shape[1], int(upto[q]))
            row, ref = Ranked(row.ids[:k], row.scores[:k]), Ranked(ref.ids[:k], ref.scores[:k])
        if ref.ids.size == 0:
            out[q] = 1.0
            continue
        inside = np.isin(row.ids, ref.ids)
        tied = row.scores[~inside] >= ref.scores[-1] - atol
        out[q] = min(1.0, (inside.sum() + tied.sum()) / min(k, ref.ids.size))
    return out


def batched(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for lo in range(0, x.shape[0], size):
        yield x[lo : lo + size]


def exact_topk(exact: ExactIndex, queries: np.ndarray, k: int) -> Hits:
    parts = [exact.search(q, k) for q in batched(queries, 64)]
    return Hits(np.concatenate([p.ids for p in parts]), np.concatenate([p.scores for p in parts]))


class RecordingIndex:
    """Forwards to an index and keeps every (queries, k, hits) it served."""

    def __init__(self, inner: VectorIndex) -> None:
        self.inner = inner
        self.calls: list[tuple[np.ndarray, Hits, np.ndarray]] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def size(self) -> int:
        return self.inner.size

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def save(self, directory: Any, *, model_version: str) -> Any:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int, *, depths: np.ndarray | None = None) -> Hits:
        hits = self.inner.search(queries, k, depths=depths)
        self.calls.append((queries, hits, np.full(len(queries), k) if depths is None else depths))
        return hits


class Unshared:
    """A TopicIndex seen through the TopicSearcher protocol only: the plan cannot batch
    its ANN rows with the implicit ones (``--no-shared-ann``)."""

    def __init__(self, inner: TopicIndex) -> None:
        self.inner = inner
        self.item_topics = inner.item_topics
        self.hits_in_topic = inner.hits_in_topic

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> Any:
        return self.inner.search(queries, topics, k)


class RecordingTopics:
    """Forwards to a TopicIndex and keeps every (queries, topics, hits) it served."""

    def __init__(self, inner: TopicIndex) -> None:
        self.inner = inner
        self.item_topics = inner.item_topics
        self.hits_in_topic = inner.hits_in_topic
        self.calls: list[tuple[np.ndarray, np.ndarray, Hits]] = []

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> Any:
        res = self.inner.search(queries, topics, k)
        self.calls.append((queries, topics, res.hits))
        return res


def first(hits: Hits, k: int) -> Hits:
    return Hits(hits.ids[:, :k], hits.scores[:, :k])


def plan_recall(
    run: Callable[[VectorIndex, TopicSearcher], None],
    index: VectorIndex,
    exact: ExactIndex,
    topic_index: TopicIndex,
    topic_exact: TopicIndex,
) -> tuple[np.ndarray, np.ndarray]:
    """Recall@100 of what the plan's own searches returned (their depth, their settings).

    ``run(index, topic_index)`` serves a batch of requests on the indexes it is
    given; the first 100 hits of every row they searched (or its depth, if
    shallower) are compared to the exact top 100 (implicit rows) or to an exact
    scan of the row's topic (explicit rows; their topic index is seen as a plain
    `TopicSearcher`, so they are searched by the topic index itself, which on one
    thread finds what the shared batch finds: each row gets the same efSearch).

    Returns:
        ``[R_im]`` and ``[R_ex]`` recall of each implicit and explicit row searched.
    """
    rec_index, rec_topics = RecordingIndex(index), RecordingTopics(topic_index)
    run(rec_index, rec_topics)
    im = [
        recall_with_ties(first(h, 100), exact_topk(exact, q, 100), upto=d)
        for q, h, d in rec_index.calls
    ]
    ex = [
        recall_with_ties(first(h, 100), topic_exact.search(q, t, 100).hits)
        for q, t, h in rec_topics.calls
    ]
    return (
        np.concatenate(im) if im else np.zeros(0),
        np.concatenate(ex) if ex else np.zeros(0),
    )


def cluster_queries(
    world: World, vectors: np.ndarray, clusters: list[int], rng: np.random.Generator
) -> np.ndarray:
    """``[Q, D]`` one query per cluster: the unit mean embedding of 5 of its items, as an
    interest mined from a few engagements would be."""
    rows = [vectors[rng.choice(world.members(c), 5)].mean(axis=0) for c in clusters]
    return unit(np.stack(rows))


def topic_study(
    world: World,
    vectors: np.ndarray,
    hnsw: FaissIndex,
    topic_index: TopicIndex,
    topic_exact: TopicIndex,
    seed: int,
) -> Iterator[dict[str, Any]]:
    """Exact block scan vs HNSW top-1000-then-filter vs the TopicIndex route, by topic size,
    for queries inside the topic (``matching``) and outside it (``other``)."""
    rng = np.random.default_rng(seed)
    it = world.item_topics
    sizes = np.diff(it.offsets)
    buckets = {
        "small (<1k)": it.topics[sizes < 1_000],
        "medium (1k-50k)": it.topics[(sizes >= 1_000) & (sizes <= 50_000)],
        "huge (>50k)": it.topics[sizes > 50_000],
    }
    present = np.flatnonzero(np.diff(world.starts) > 0)
    for bucket, pool in buckets.items():
        if pool.size == 0:
            continue
        chosen = rng.choice(pool, size=min(40, pool.size), replace=False)
        inside = [
            int(rng.choice(np.intersect1d(world.clusters_of(int(t)), present))) for t in chosen
        ]
        outside = [
            int(rng.choice(np.setdiff1d(present, world.clusters_of(int(t))))) for t in chosen
        ]
        match = cluster_queries(world, vectors, inside, rng)
        other = cluster_queries(world, vectors, outside, rng)
        for kind, queries in (("matching", match), ("other", other)):
            yield from _compare_routes(
                it, chosen, queries, hnsw, topic_index, topic_exact, bucket, kind
            )


def _compare_routes(
    it: ItemTopics,
    chosen: np.ndarray,
    queries: np.ndarray,
    hnsw: FaissIndex,
    topic_index: TopicIndex,
    topic_exact: TopicIndex,
    bucket: str,
    kind: str,
) -> Iterator[dict[str, Any]]:
    truth = topic_exact.search(queries, chosen, 100).hits
    t = time.perf_counter()
    for q in range(chosen.size):  # one query at a time: per-topic cost
        topic_exact.search(queries[q : q + 1], chosen[q : q + 1], 100)
    exact_ms = (time.perf_counter() - t) * 1e3 / chosen.size
    t = time.perf_counter()
    ann = hnsw.search(queries, 1000)
    ann_ms = (time.perf_counter() - t) * 1e3 / chosen.size
    filt_ids = np.full((chosen.size, 100), -1, dtype=np.int64)
    filt_scores = np.full((chosen.size, 100), -np.inf, dtype=np.float32)
    for q in range(chosen.size):
        row = ann.row(q)
        keep = it.contains(row.ids, int(chosen[q]))
        n = min(100, int(keep.sum()))
        filt_ids[q, :n] = row.ids[keep][:n]
        filt_scores[q, :n] = row.scores[keep][:n]
    t = time.perf_counter()
    routed = topic_index.search(queries, chosen, 100)
    routed_ms = (time.perf_counter() - t) * 1e3 / chosen.size
    base = {
        "study": "topic_search",
        "topics": bucket,
        "query": kind,
        "median_topic_size": int(np.median([it.size_of(int(c)) for c in chosen])),
        "n": int(chosen.size),
    }
    yield {
        **base,
        "method": "exact_block",
        "recall_at_100": 1.0,
        "ms_per_query": round(exact_ms, 4),
    }
    yield {
        **base,
        "method": "hnsw_top1000_then_filter",
        "recall_at_100": round(
            float(recall_with_ties(Hits(filt_ids, filt_scores), truth).mean()), 4
        ),
        "ms_per_query": round(ann_ms, 4),
    }
    yield {
        **base,
        "method": "topic_index",
        "route": "ann_then_filter" if routed.ann.any() else "exact_block",
        "recall_at_100": round(float(recall_with_ties(routed.hits, truth).mean()), 4),
        "ms_per_query": round(routed_ms, 4),
        "mean_filtered": round(float(routed.filtered.mean()), 1),
        "mean_depth": round(float(routed.depth.mean()), 1),
    }
