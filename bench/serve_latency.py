"""Benchmark: in-process latency and recall of the multi-embedding retrieval plan.

A synthetic clustered corpus (``--items`` unit vectors of dimension ``--dim``
around ``--clusters`` centres) with two kinds of topics: fine topics (three
per cluster, a few hundred items each, plus a random extra fine topic on 30%
of the items) and broad topics (``--broad`` of them, Zipf-sized groups of
clusters, the largest well above 100k items). Indexes: FAISS ``HNSW32`` and
``IVF1024,Flat`` over all items, and a `TopicIndex` (exact per-topic blocks,
ANN plus deepening post-filter for topics above ``--exact-max-items``).

Requests (distinct query vectors for every request; a repeated query would
measure caches):

- ``multi``: 7 implicit embeddings (interest centres plus noise, importance
  from a Dirichlet) and 5 explicit embeddings for 5 topics sampled from 8
  followed ones (a topic-conditioned embedding points at what the user likes
  within the topic: the centre of one of the topic's clusters, plus noise),
  total budget 1000;
- ``single``: one embedding (the importance-weighted mean of the same user's
  implicit embeddings) with budget 1000.

Each request runs `multiembed.retrieve.plan_request` (budgets, batched search,
topic search, relevance filter, round-robin merge). The user tower is NOT
timed: query vectors are precomputed and passed in (``"user_tower":
"excluded"``). The `TopicIndex` searches topics above ``--exact-max-items`` in
the same FAISS index, so the plan batches their first search with the implicit
rows: stage ``search_implicit`` then includes it (``--no-shared-ann`` keeps them
in ``search_explicit``, for comparison). Every line printed to stdout is JSON:

    {"mode": "multi", "where": "in_process", "index": "HNSW32", "p50_ms": ..,
     "p90_ms": .., "p99_ms": .., "recall_at_100": .., "stages": {..}, ...}
    {"study": "index_recall", ...}       recall@100 of the ANN index vs exact
    {"study": "topic_search", ...}       exact blocks vs HNSW top-1000-then-filter

``cpu_p50_ms`` .. ``cpu_p99_ms`` are the process CPU time of each request: with
``--threads 1`` that is the latency an idle core would give, a figure that
survives other processes competing for the machine (wall times do not; the
1-minute load average is printed with each line).

``recall_at_100`` of a mode is the mean over its embeddings (on a sample of
``--recall-requests`` requests) of |ANN top-100 & exact top-100| / 100, with
ties at the 100th score counted as found; explicit embeddings are compared to
an exact scan of their topic. It records the searches of the unshared plan
(explicit rows searched by the topic index itself), which on one thread finds
the same hits: each row gets the same efSearch either way.

    python bench/serve_latency.py                      # 1M items (a few minutes)
    python bench/serve_latency.py --items 200000 --requests 500   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# OpenMP's default active spin-wait makes 2 search threads on 2 (shared) cores stall
# for whole scheduler quanta (p50 16 ms instead of 1.2 ms for 7 HNSW queries over
# 100k items, measured here); wait passively. Set before FAISS loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # topic blocks: gemv, one thread
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from multiembed.index import (
    ExactIndex,
    FaissIndex,
    Hits,
    ItemTopics,
    Ranked,
    TopicIndex,
    VectorIndex,
)
from multiembed.retrieve import (
    ExplicitQueries,
    ImplicitQueries,
    PlanSettings,
    plan_request,
    sample_topics,
)

NOISE = 0.5  # per-dimension noise around a centre (centres are standard normal)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class World:
    ids: np.ndarray  # [C] int64
    x: np.ndarray  # [C, D] float32, unit
    centres: np.ndarray  # [clusters, D]
    cluster: np.ndarray  # [C] cluster of each item
    item_topics: ItemTopics
    fine_of_cluster: np.ndarray  # [clusters, 3] fine topics of each cluster
    broad_of_cluster: np.ndarray  # [clusters] broad topic of each cluster

    def clusters_of(self, topic: int) -> np.ndarray:
        """The clusters whose items carry `topic` as their broad or fine topic."""
        n_broad = int(self.fine_of_cluster.min())  # fine topics are numbered after broad ones
        if topic >= n_broad:
            return np.array([(topic - n_broad) // 3])
        return np.flatnonzero(self.broad_of_cluster == topic)


def make_world(items: int, dim: int, clusters: int, broad: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    cluster = rng.integers(0, clusters, items)
    x = np.empty((items, dim), dtype=np.float32)
    for lo in range(0, items, 200_000):  # in chunks: float64 temporaries stay small
        hi = min(items, lo + 200_000)
        x[lo:hi] = unit(centres[cluster[lo:hi]] + NOISE * rng.standard_normal((hi - lo, dim)))
    ids = rng.choice(10**12, size=items, replace=False).astype(np.int64)
    # fine topics: 3 per cluster (ids broad .. broad + 3 * clusters); broad: 0 .. broad - 1
    fine_of_cluster = broad + np.arange(3 * clusters).reshape(clusters, 3)
    zipf = 1.0 / np.arange(1, broad + 1)
    broad_of_cluster = rng.choice(broad, size=clusters, p=zipf / zipf.sum())
    fine = fine_of_cluster[cluster, rng.integers(0, 3, items)]
    extra = rng.random(items) < 0.3
    random_fine = broad + rng.integers(0, 3 * clusters, int(extra.sum()))
    pair_items = np.concatenate([ids, ids, ids[extra]])
    pair_topics = np.concatenate([broad_of_cluster[cluster], fine, random_fine])
    it = ItemTopics.from_pairs(pair_items, pair_topics)
    return World(ids, x, centres, cluster, it, fine_of_cluster, broad_of_cluster)


@dataclass
class Request:
    user: int
    implicit: ImplicitQueries
    explicit: ExplicitQueries
    single: ImplicitQueries


def make_requests(world: World, n: int, k_im: int, k_ex: int, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    clusters, dim = world.centres.shape
    out = []
    for user in range(n):
        interests = rng.choice(clusters, size=k_im, replace=False)
        emb = unit(world.centres[interests] + NOISE * rng.standard_normal((k_im, dim)))
        importance = np.sort(rng.dirichlet(np.ones(k_im)))[::-1] * 50
        # followed: a topic (fine, or its broad one) of 5 of the user's interest clusters,
        # and fine topics of 3 other clusters (long-term interests absent from history)
        home: dict[int, int] = {}  # topic -> the cluster the user likes in it
        for c in interests[:5]:
            t = (
                world.broad_of_cluster[c]
                if rng.random() < 0.3
                else rng.choice(world.fine_of_cluster[c])
            )
            home.setdefault(int(t), int(c))
        for c in rng.choice(clusters, 3):
            home.setdefault(int(rng.choice(world.fine_of_cluster[c])), int(c))
        topics = sample_topics(np.array(list(home)), k_ex, seed=seed, user=user)
        # a topic-conditioned embedding points at what the user likes within the topic
        t_emb = unit(
            world.centres[[home[int(t)] for t in topics]]
            + NOISE * rng.standard_normal((topics.size, dim))
        )
        single = unit((importance[:, None] * emb).sum(axis=0, keepdims=True))
        out.append(
            Request(
                user,
                ImplicitQueries(emb, importance, np.ones(k_im, dtype=bool)),
                ExplicitQueries(topics, t_emb),
                ImplicitQueries(single, np.ones(1), np.ones(1, dtype=bool)),
            )
        )
    return out


def percentiles(ms: list[float]) -> dict[str, float]:
    p = np.percentile(np.array(ms), [50, 90, 99])
    return {
        "p50_ms": round(float(p[0]), 3),
        "p90_ms": round(float(p[1]), 3),
        "p99_ms": round(float(p[2]), 3),
    }


def run_mode(
    mode: str,
    warmup: list[Request],
    requests: list[Request],
    index: VectorIndex,
    topic_index: TopicIndex | Unshared,
    popular: Ranked,
    settings: PlanSettings,
) -> dict[str, Any]:
    def once(r: Request) -> tuple[float, float, dict[str, float], int]:
        t, cpu = time.perf_counter(), time.process_time()
        if mode == "multi":
            res = plan_request(
                index=index,
                popular=popular,
                settings=settings,
                implicit=r.implicit,
                explicit=r.explicit,
                topic_index=topic_index,
            )
        else:
            res = plan_request(index=index, popular=popular, settings=settings, implicit=r.single)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        return wall * 1e3, cpu * 1e3, res.stages_ms, len(res)

    for r in warmup:  # distinct from the measured requests: no cache reuse
        once(r)
    total: list[float] = []
    cpu: list[float] = []
    stages: dict[str, list[float]] = {}
    sizes: list[int] = []
    for r in requests:
        ms, cpu_ms, st, n = once(r)
        total.append(ms)
        cpu.append(cpu_ms)
        sizes.append(n)
        for k, v in st.items():
            stages.setdefault(k, []).append(v)
    return {
        **percentiles(total),
        **{f"cpu_{k}": v for k, v in percentiles(cpu).items()},
        "stages_p50_ms": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
        "stages_p90_ms": {k: round(float(np.percentile(v, 90)), 3) for k, v in stages.items()},
        "candidates_min": int(min(sizes)),
        "requests": len(requests),
    }


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

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> Any:
        return self.inner.search(queries, topics, k)


class RecordingTopics:
    """Forwards to a TopicIndex and keeps every (queries, topics, hits) it served."""

    def __init__(self, inner: TopicIndex) -> None:
        self.inner = inner
        self.item_topics = inner.item_topics
        self.calls: list[tuple[np.ndarray, np.ndarray, Hits]] = []

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> Any:
        res = self.inner.search(queries, topics, k)
        self.calls.append((queries, topics, res.hits))
        return res


def first(hits: Hits, k: int) -> Hits:
    return Hits(hits.ids[:, :k], hits.scores[:, :k])


def mode_recall(
    mode: str,
    requests: list[Request],
    index: VectorIndex,
    exact: ExactIndex,
    topic_index: TopicIndex,
    topic_exact: TopicIndex,
    popular: Ranked,
    settings: PlanSettings,
) -> tuple[float, float]:
    """Recall@100 of what the plan's own searches returned (their depth, their settings):
    the first 100 hits of every searched row (or its depth, if shallower) against the
    exact top 100 (implicit rows) or an exact scan of the topic (explicit rows).
    Returns (implicit, explicit) means."""
    rec_index, rec_topics = RecordingIndex(index), RecordingTopics(topic_index)
    for r in requests:
        if mode == "multi":
            plan_request(
                index=rec_index,
                popular=popular,
                settings=settings,
                implicit=r.implicit,
                explicit=r.explicit,
                topic_index=rec_topics,
            )
        else:
            plan_request(index=rec_index, popular=popular, settings=settings, implicit=r.single)
    im = [
        recall_with_ties(first(h, 100), exact_topk(exact, q, 100), upto=d)
        for q, h, d in rec_index.calls
    ]
    ex = [
        recall_with_ties(first(h, 100), topic_exact.search(q, t, 100).hits)
        for q, t, h in rec_topics.calls
    ]
    return (
        float(np.concatenate(im).mean()) if im else float("nan"),
        float(np.concatenate(ex).mean()) if ex else float("nan"),
    )


def topic_study(
    world: World, hnsw: FaissIndex, topic_index: TopicIndex, topic_exact: TopicIndex, seed: int
) -> Iterator[dict[str, Any]]:
    """Exact block scan vs HNSW top-1000-then-filter vs the TopicIndex route, by topic size."""
    rng = np.random.default_rng(seed)
    it = world.item_topics
    sizes = np.diff(it.offsets)
    buckets = {
        "small (<1k)": it.topics[sizes < 1_000],
        "medium (1k-50k)": it.topics[(sizes >= 1_000) & (sizes <= 50_000)],
        "huge (>50k)": it.topics[sizes > 50_000],
    }
    dim = world.x.shape[1]
    for bucket, pool in buckets.items():
        if pool.size == 0:
            continue
        chosen = rng.choice(pool, size=min(40, pool.size), replace=False)
        inside = [int(rng.choice(world.clusters_of(int(t)))) for t in chosen]
        match = unit(world.centres[inside] + NOISE * rng.standard_normal((chosen.size, dim)))
        everywhere = np.arange(world.centres.shape[0])
        outside = [
            int(rng.choice(np.setdiff1d(everywhere, world.clusters_of(int(t))))) for t in chosen
        ]
        other = unit(world.centres[outside] + NOISE * rng.standard_normal((chosen.size, dim)))
        for kind, queries in (("matching", match), ("other", other)):
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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--broad", type=int, default=20, help="number of broad (huge) topics")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--recall-requests", type=int, default=200)
    ap.add_argument("--total", type=int, default=1000)
    ap.add_argument(
        "--threads", default="2", help="FAISS search threads; a comma list runs each in turn"
    )
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ivf", default="IVF1024,Flat")
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--indexes", default="hnsw,ivf", help="comma list of hnsw, ivf")
    ap.add_argument("--exact-max-items", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-topic-study", action="store_true")
    ap.add_argument(
        "--no-shared-ann",
        action="store_true",
        help="search huge explicit topics in their own FAISS call, not with the implicit rows",
    )
    ap.add_argument(
        "--cache",
        default=None,
        help="directory to save built indexes in and reload them from (FaissIndex.save/load)",
    )
    args = ap.parse_args()
    build_threads = args.build_threads
    thread_counts = [int(t) for t in args.threads.split(",")]

    log(f"world: {args.items} items x {args.dim}, {args.clusters} clusters")
    t = time.perf_counter()
    world = make_world(args.items, args.dim, args.clusters, args.broad, args.seed)
    sizes = np.diff(world.item_topics.offsets)
    above = int((sizes > args.exact_max_items).sum())
    log(
        f"world built in {time.perf_counter() - t:.1f}s: {sizes.size} topics, median size "
        f"{int(np.median(sizes))}, max {int(sizes.max())}, {above} above {args.exact_max_items}"
    )
    exact = ExactIndex(args.dim)
    exact.add(world.ids, world.x)
    requests = make_requests(world, args.requests + args.warmup, 7, 5, args.seed + 1)
    warmup, measured = requests[: args.warmup], requests[args.warmup :]
    sample = measured[: args.recall_requests]
    popular = Ranked(world.ids[:5000], np.linspace(1, 0, 5000, dtype=np.float32))
    settings = PlanSettings(total=args.total, k_ex=5, floor=10, overfetch=0.2)
    topic_exact = TopicIndex.build(world.ids, world.x, world.item_topics)
    context = {
        "items": args.items,
        "dim": args.dim,
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "faiss": faiss.__version__,
        "user_tower": "excluded (precomputed query vectors)",
    }

    for name in args.indexes.split(","):
        factory = "HNSW32" if name == "hnsw" else args.ivf
        key = (
            f"{factory}-efc{args.ef_construction}-{args.items}x{args.dim}"
            f"-c{args.clusters}-b{args.broad}-s{args.seed}"
        )
        cached = Path(args.cache, key.replace(",", "_")) if args.cache else None
        t = time.perf_counter()
        if cached is not None and (cached / "manifest.json").exists():
            index = FaissIndex.load(cached, expected_model_version=key, threads=build_threads)
            build_s = None
            log(f"{factory}: loaded from {cached} in {time.perf_counter() - t:.1f}s")
        else:
            index = FaissIndex(
                args.dim,
                factory,
                ef_construction=args.ef_construction,
                threads=build_threads,
            )
            index.add(world.ids, world.x)
            build_s = round(time.perf_counter() - t, 1)
            log(f"{factory}: built in {build_s}s ({build_threads} threads)")
            if cached is not None:
                index.save(cached, model_version=key)
        index.ef_search, index.nprobe = args.ef_search, args.nprobe
        index.threads = thread_counts[0]
        topic_index = TopicIndex.build(
            world.ids, world.x, world.item_topics, ann=index, exact_max_items=args.exact_max_items
        )
        interest = np.concatenate([r.implicit.embeddings for r in sample])
        blended = np.concatenate([r.single.embeddings for r in sample])
        print(
            json.dumps(
                {
                    "study": "index_recall",
                    "index": factory,
                    **index.search_settings,
                    "k": 100,
                    "build_s": build_s,
                    "recall_at_100_interest_queries": round(
                        float(
                            recall_with_ties(
                                index.search(interest, 100), exact_topk(exact, interest, 100)
                            ).mean()
                        ),
                        4,
                    ),
                    "recall_at_100_blended_queries": round(
                        float(
                            recall_with_ties(
                                index.search(blended, 100), exact_topk(exact, blended, 100)
                            ).mean()
                        ),
                        4,
                    ),
                    "queries": int(interest.shape[0] + blended.shape[0]),
                    "threads": index.threads,
                    **context,
                }
            ),
            flush=True,
        )
        recalls = {
            mode: mode_recall(
                mode, sample, index, exact, topic_index, topic_exact, popular, settings
            )
            for mode in ("multi", "single")
        }
        for threads, mode in ((t, m) for t in thread_counts for m in ("multi", "single")):
            index.threads = threads
            r_im, r_ex = recalls[mode]
            recall = r_im if mode == "single" else (7 * r_im + 5 * r_ex) / 12
            log(f"{factory}: {mode} requests, {threads} thread(s)")
            load_before = os.getloadavg()[0]
            topics = Unshared(topic_index) if args.no_shared_ann else topic_index
            res = run_mode(mode, warmup, measured, index, topics, popular, settings)
            line = {
                "mode": mode,
                "where": "in_process",
                "index": factory,
                **index.search_settings,
                "p50_ms": res["p50_ms"],
                "p90_ms": res["p90_ms"],
                "p99_ms": res["p99_ms"],
                "cpu_p50_ms": res["cpu_p50_ms"],
                "cpu_p90_ms": res["cpu_p90_ms"],
                "cpu_p99_ms": res["cpu_p99_ms"],
                "recall_at_100": round(recall, 4),
                "recall_at_100_by_kind": {"implicit": round(r_im, 4)}
                | ({"explicit": round(r_ex, 4)} if mode == "multi" else {}),
                "stages": res["stages_p50_ms"],
                "stages_p90": res["stages_p90_ms"],
                "requests": res["requests"],
                "candidates_min": res["candidates_min"],
                "embeddings": 12 if mode == "multi" else 1,
                "total": args.total,
                "threads": threads,
                "shared_ann": not args.no_shared_ann,
                **context,
                "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
            print(json.dumps(line), flush=True)
        if name == "hnsw" and not args.no_topic_study:
            log("topic study")
            for study in topic_study(world, index, topic_index, topic_exact, args.seed + 2):
                print(json.dumps(study), flush=True)
        del topic_index, index


if __name__ == "__main__":
    main()
