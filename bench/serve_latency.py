"""Benchmark: in-process latency and recall of whole serving requests, user tower included.

The world (`latency_world`): ``--items`` items in ``--clusters`` clusters, each with
a pretrained vector (a unit vector of width ``--vector-dim`` around its cluster's
centre) and topics of two kinds: fine topics (three per cluster, a few hundred
items each, plus a random extra fine topic on 30% of the items) and broad topics
(``--broad`` of them, Zipf-sized groups of clusters, the largest well above 100k
items at 1M items).

The models: the library's default model (``Config()``: DCM, its default ``k``,
``dim`` and ``seq_len``) and the single-embedding model (``model.name =
"single"``, same sizes), built with `multiembed.runs.model_from_config` over that
item table, so their item-id tables hold ``--items`` rows. They are untrained:
latency does not depend on the weights. The index holds the models' own item
embeddings (the single model takes the default model's item tower, so one index
serves both), not a separate synthetic corpus, so every query a tower produces is
searched in the space it belongs to. An untrained item tower keeps the clusters
of the pretrained vectors (items of one cluster land close together) and the
DCM tower's interests land among the clusters of the user's history, as a
trained tower's do, which keeps the recall figures about the ANN indexes on the
kind of data and queries they serve. Indexes: FAISS ``HNSW32`` and
``IVF1024,Flat`` over all items, and a `TopicIndex` (exact per-topic blocks, ANN
plus deepening post-filter for topics above ``--exact-max-items``).

Requests start from a user's engagement history (``seq_len`` item ids drawn
from 2 to 6 interest clusters; 30% of the users have a shorter history) and
followed topics; every request has its own user (a repeated one would measure
caches). A request, timed whole, runs as the service runs it without a
conditional model:

- ``multi``: the default model's user tower embeds the history
  (`multiembed.retrieve.implicit_queries` turns its output into the implicit
  queries), ``K_ex`` followed topics are sampled (`sample_topics`) and searched
  with the user's taste (`explicit_standin`), then `plan_request` budgets,
  searches, filters and merges ``--total`` candidates;
- ``single``: the single model's tower, then `plan_request` with its one
  embedding and the same total.

Each of ``--towers`` runs the user towers in turn (a line's ``tower``): ``torch``,
the PyTorch modules, and ``onnx``, their graphs exported by
`multiembed.onnx.export_model` and run by onnxruntime through
`multiembed.serve.OnnxUserTower`, as ``multiembed serve`` does by default.

Stage times (``stages``, p50 per stage; ``stages_p90``) include ``user_tower``
(the tower's forward pass and its queries), ``explicit_queries`` (multi: topic
sampling and the stand-in) and the plan's own stages. The `TopicIndex` searches
topics above ``--exact-max-items`` in the same FAISS index, so the plan batches
their first search with the implicit rows: stage ``search_implicit`` then
includes it (``--no-shared-ann`` keeps them in ``search_explicit``). Every line
printed to stdout is JSON and names the machine: ``cpu`` (model name),
``threads`` (``{"search": FAISS threads, "torch": torch threads}``) and
``load_1m`` (the 1-minute load average when the line was written):

    {"mode": "multi", "where": "in_process", "index": "HNSW32", "p50_ms": ..,
     "p90_ms": .., "p99_ms": .., "recall_at_100": .., "stages": {"user_tower": ..,
     ...}, "cpu": .., "threads": {..}, "load_1m": .., ...}
    {"study": "index_recall", ...}       recall@100 of the ANN index vs exact
    {"study": "topic_search", ...}       exact blocks vs HNSW top-1000-then-filter

``index_distances_mean`` is the mean number of vector distances FAISS computed per
request (HNSW graph steps or IVF list entries; the exact topic scans are not
counted): the index's share of a request's work, the same on any CPU, so the
ratio of two modes' figures says how much of their latency ratio the search
explains.

``cpu_p50_ms`` .. ``cpu_p99_ms`` are the process CPU time of each request: with
``--threads 1 --torch-threads 1`` that is the latency an idle core would give, a
figure that survives other processes competing for the machine (wall times do
not; compare ``load_1m`` with ``load_1m_at_start`` of a line).

``recall_at_100`` of a mode is the mean over the rows its requests searched (on a
sample of ``--recall-requests`` requests) of |ANN top-100 & exact top-100| / 100,
with ties at the 100th score counted as found; explicit rows are compared to an
exact scan of their topic (`latency_recall.plan_recall`).

    python bench/serve_latency.py                      # 1M items (a few minutes)
    python bench/serve_latency.py --items 200000 --requests 500   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

# OpenMP's default active spin-wait makes 2 search threads on 2 (shared) cores stall
# for whole scheduler quanta (p50 16 ms instead of 1.2 ms for 7 HNSW queries over
# 100k items, measured here); wait passively. Set before FAISS loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # topic blocks: gemv, one thread
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import faiss
import numpy as np
import torch

from latency_recall import Unshared, exact_topk, plan_recall, recall_with_ties, topic_study
from latency_world import Models, User, default_models, machine, make_users, make_world
from multiembed.config import Config
from multiembed.index import (
    ITEMS_PER_DEPTH,
    ExactIndex,
    FaissIndex,
    Ranked,
    TopicIndex,
    VectorIndex,
)
from multiembed.nn.retrieval import RetrievalModel
from multiembed.onnx import export_model
from multiembed.retrieve import (
    ExplicitQueries,
    ImplicitQueries,
    PlanSettings,
    Retrieval,
    TopicSearcher,
    explicit_standin,
    implicit_queries,
    plan_request,
    sample_topics,
    topic_centroids,
)
from multiembed.serve import OnnxUserTower

MODES = ("multi", "single")
TOWERS = ("torch", "onnx")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Serving:
    """What a request runs on: the two towers, the indexes and the plan's settings.

    Attributes:
        models: `Models` (the default model, the single model, their item embeddings).
        index: the item index.
        topic_index: the per-topic searcher of explicit rows.
        popular: the popularity fallback.
        centroids: ``[n_topics, D]`` topic centroids of the explicit stand-in.
        settings: `PlanSettings` (total, K_ex).
        seed: topic-sampling seed.
        graphs: each mode's user tower as its ONNX graph (`OnnxUserTower`), which
            requests then run instead of PyTorch (``--towers onnx``); None: PyTorch.
    """

    models: Models
    index: VectorIndex
    topic_index: TopicSearcher
    popular: Ranked
    centroids: np.ndarray
    settings: PlanSettings
    seed: int = 0
    graphs: dict[str, OnnxUserTower] | None = None

    def model(self, mode: str) -> RetrievalModel:
        return self.models.multi if mode == "multi" else self.models.single

    def queries(self, mode: str, user: User) -> ImplicitQueries | None:
        """The implicit queries of `user` under `mode`'s tower, as the service runs it."""
        if self.graphs is None:
            return user_queries(self.model(mode), user)
        out = self.graphs[mode](user.history[None], user.valid[None])
        return implicit_queries(out.embeddings[0], out.importance[0], out.slot_mask[0])


def user_queries(model: RetrievalModel, user: User) -> ImplicitQueries | None:
    """The user tower on one history, as the service runs it: ``[1, L]`` in, queries out."""
    with torch.inference_mode():  # as the service runs it
        out = model.embed_users(
            torch.as_tensor(user.history[None]), torch.as_tensor(user.valid[None])
        )
    return implicit_queries(
        out.embeddings[0].float().numpy(),  # [K, D]
        out.importance[0].float().numpy(),
        out.slot_mask[0].numpy(),
    )


def serve(
    mode: str,
    user: User,
    s: Serving,
    *,
    index: VectorIndex | None = None,
    topic_index: TopicSearcher | None = None,
) -> tuple[Retrieval, dict[str, float]]:
    """One whole request of `mode` for `user`: tower, explicit queries (multi), plan.

    Returns the plan's `Retrieval` and the wall time of each stage in ms. `index`
    and `topic_index` replace those of `s` (the recall study records through them).
    """
    t0 = time.perf_counter()
    implicit = s.queries(mode, user)
    t1 = time.perf_counter()
    explicit: ExplicitQueries | None = None
    if mode == "multi":
        topics = sample_topics(user.followed, s.settings.k_ex, seed=s.seed, user=user.user)
        explicit = explicit_standin(topics, implicit, s.centroids)
    t2 = time.perf_counter()
    res = plan_request(
        index=s.index if index is None else index,
        popular=s.popular,
        settings=s.settings,
        implicit=implicit,
        explicit=explicit,
        topic_index=s.topic_index if topic_index is None else topic_index,
    )
    stages = {"user_tower": (t1 - t0) * 1e3}
    if mode == "multi":
        stages["explicit_queries"] = (t2 - t1) * 1e3
    return res, stages | res.stages_ms


class Timed(NamedTuple):
    """One timed request: wall and CPU ms of the whole request, its stages, its size, and
    the distances FAISS computed for it (`index_distances`)."""

    wall_ms: float
    cpu_ms: float
    stages_ms: dict[str, float]
    candidates: int
    lists: int
    distances: int = 0


def index_distances() -> int:
    """Vector distances FAISS's HNSW and IVF searches computed since the last
    `reset_index_distances`: the index's work, whatever the CPU (the exact topic scans
    are numpy's and not counted)."""
    return sum(int(stats.ndis) for stats in _faiss_stats())


def reset_index_distances() -> None:
    for stats in _faiss_stats():
        stats.reset()


def _faiss_stats() -> tuple[Any, Any]:
    """FAISS's global search counters of HNSW and of IVF (SWIG globals, untyped)."""
    cvar: Any = faiss.cvar
    return cvar.hnsw_stats, cvar.indexIVF_stats


def time_requests(mode: str, users: Sequence[User], s: Serving) -> list[Timed]:
    """Serve each user once, timing the whole request (`serve`: user tower included)."""
    out = []
    for user in users:
        reset_index_distances()
        t, cpu = time.perf_counter(), time.process_time()
        res, stages = serve(mode, user, s)
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        timed = Timed(wall * 1e3, cpu * 1e3, stages, len(res), len(res.sources), index_distances())
        out.append(timed)
    return out


def percentiles(ms: Sequence[float], prefix: str = "") -> dict[str, float]:
    p = np.percentile(np.array(ms), [50, 90, 99])
    return {f"{prefix}p{q}_ms": round(float(v), 3) for q, v in zip((50, 90, 99), p, strict=True)}


def summarise(timed: list[Timed]) -> dict[str, Any]:
    """Percentiles of whole-request wall and CPU time and of each stage."""
    stages: dict[str, list[float]] = {}
    for t in timed:
        for k, v in t.stages_ms.items():
            stages.setdefault(k, []).append(v)
    return {
        **percentiles([t.wall_ms for t in timed]),
        **percentiles([t.cpu_ms for t in timed], "cpu_"),
        "stages": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
        "stages_p90": {k: round(float(np.percentile(v, 90)), 3) for k, v in stages.items()},
        "requests": len(timed),
        "candidates_min": min(t.candidates for t in timed),
        "refilled": round(sum("refill" in t.stages_ms for t in timed) / len(timed), 3),
        "lists_mean": round(float(np.mean([t.lists for t in timed])), 2),
        "index_distances_mean": round(float(np.mean([t.distances for t in timed]))),
    }


def mode_recall(
    mode: str, users: Sequence[User], s: Serving, exact: ExactIndex, topic_exact: TopicIndex
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row recall@100 (implicit, explicit) of the searches `mode`'s requests made."""
    assert isinstance(s.topic_index, TopicIndex)

    def run(index: VectorIndex, topic_index: TopicSearcher) -> None:
        for user in users:
            serve(mode, user, s, index=index, topic_index=topic_index)

    return plan_recall(run, s.index, exact, s.topic_index, topic_exact)


def query_rows(model: RetrievalModel, users: Sequence[User]) -> np.ndarray:
    """``[Q, D]`` every used implicit query of `users` under `model`'s tower."""
    rows = [q.embeddings[q.slot_mask] for u in users if (q := user_queries(model, u)) is not None]
    return np.concatenate(rows)


def index_recall(index: FaissIndex, exact: ExactIndex, queries: np.ndarray) -> float:
    return round(
        float(recall_with_ties(index.search(queries, 100), exact_topk(exact, queries, 100)).mean()),
        4,
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument(
        "--vector-dim", type=int, default=64, help="width of the items' pretrained vectors"
    )
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--broad", type=int, default=20, help="number of broad (huge) topics")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--recall-requests", type=int, default=200)
    ap.add_argument("--total", type=int, default=1000)
    ap.add_argument(
        "--overfetch",
        type=float,
        default=PlanSettings().overfetch,
        help="first search of each list this share deeper than its budget (PlanSettings)",
    )
    ap.add_argument(
        "--threads", default="2", help="FAISS search threads; a comma list runs each in turn"
    )
    ap.add_argument("--torch-threads", type=int, default=1, help="torch threads of the towers")
    ap.add_argument(
        "--towers",
        default="torch,onnx",
        help="comma list of torch (the PyTorch tower) and onnx (its exported graph run by "
        "onnxruntime, as `multiembed serve` runs it); each is timed in turn",
    )
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--ef-search", type=int, default=128)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ivf", default="IVF1024,Flat")
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--indexes", default="hnsw,ivf", help="comma list of hnsw, ivf")
    ap.add_argument("--exact-max-items", type=int, default=10_000)
    ap.add_argument(
        "--items-per-depth",
        type=int,
        default=ITEMS_PER_DEPTH,
        help="TopicIndex: items per unit of ANN depth a topic needs to be walked, not scanned",
    )
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
    return ap.parse_args(argv)


def item_index(
    factory: str, vectors: np.ndarray, args: argparse.Namespace, key: str
) -> tuple[FaissIndex, float | None]:
    """The FAISS index of `vectors` (ids ``0 .. C - 1``): loaded from ``--cache`` when it
    holds one for `key`, else built (and saved there); with its build time in s."""
    cached = Path(args.cache, key.replace(",", "_")) if args.cache else None
    t = time.perf_counter()
    if cached is not None and (cached / "manifest.json").exists():
        index = FaissIndex.load(cached, expected_model_version=key, threads=args.build_threads)
        log(f"{factory}: loaded from {cached} in {time.perf_counter() - t:.1f}s")
        return index, None
    index = FaissIndex(
        vectors.shape[1], factory, ef_construction=args.ef_construction, threads=args.build_threads
    )
    index.add(np.arange(vectors.shape[0], dtype=np.int64), vectors)
    build_s = round(time.perf_counter() - t, 1)
    log(f"{factory}: built in {build_s}s ({args.build_threads} threads)")
    if cached is not None:
        index.save(cached, model_version=key)
    return index, build_s


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(args.torch_threads)
    config = Config()

    log(f"world: {args.items} items, {args.clusters} clusters")
    world = make_world(args.items, args.vector_dim, args.clusters, args.broad, args.seed)
    t = time.perf_counter()
    models = default_models(world, config)
    sizes = np.diff(world.item_topics.offsets)
    log(
        f"models and item embeddings in {time.perf_counter() - t:.1f}s: {sizes.size} topics, "
        f"median size {int(np.median(sizes))}, max {int(sizes.max())}, "
        f"{int((sizes > args.exact_max_items).sum())} above {args.exact_max_items}"
    )
    vectors = models.vectors
    exact = ExactIndex(vectors.shape[1])
    exact.add(world.ids, vectors)
    interests = (config.synthetic.interests_min, config.synthetic.interests_max)
    users = make_users(
        world,
        args.requests + args.warmup,
        seq_len=config.examples.seq_len,
        interests=interests,
        seed=args.seed + 1,
    )
    warmup, measured = users[: args.warmup], users[args.warmup :]
    sample = measured[: args.recall_requests]
    n_popular = min(5000, args.items)
    popular = Ranked(world.ids[:n_popular], np.linspace(1, 0, n_popular, dtype=np.float32))
    settings = PlanSettings(total=args.total, k_ex=config.eval.k_ex, overfetch=args.overfetch)
    centroids = topic_centroids(world.item_topics, vectors, world.n_topics)
    topic_exact = TopicIndex.build(world.ids, vectors, world.item_topics)
    m = config.model
    context = {
        "items": args.items,
        "dim": int(vectors.shape[1]),
        "models": {"multi": f"{m.name} k={m.k}", "single": "single"},
        "seq_len": config.examples.seq_len,
        "k_ex": settings.k_ex,
        "user_tower": "included (untrained default model, in the timed request)",
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "faiss": faiss.__version__,
        "torch": torch.__version__,
    }
    interest_queries = query_rows(models.multi, sample)
    single_queries = query_rows(models.single, sample)
    towers = args.towers.split(",")
    unknown = sorted(set(towers) - set(TOWERS))
    if unknown:
        raise SystemExit(f"--towers: {unknown} not in {list(TOWERS)}")
    graphs = None
    if "onnx" in towers:
        with tempfile.TemporaryDirectory() as folder:  # the sessions hold the graphs
            graphs = onnx_towers(models, config, args.torch_threads, Path(folder))

    for name in args.indexes.split(","):
        factory = "HNSW32" if name == "hnsw" else args.ivf
        key = (
            f"{factory}-efc{args.ef_construction}-{args.items}-v{args.vector_dim}"
            f"-c{args.clusters}-b{args.broad}-s{args.seed}-{models.fingerprint}"
        )
        index, build_s = item_index(factory, vectors, args, key)
        index.ef_search, index.nprobe = args.ef_search, args.nprobe
        index.threads = thread_counts[0]
        topic_index = TopicIndex.build(
            world.ids,
            vectors,
            world.item_topics,
            ann=index,
            exact_max_items=args.exact_max_items,
            items_per_depth=args.items_per_depth,
        )
        study = {
            "study": "index_recall",
            "index": factory,
            **index.search_settings,
            "k": 100,
            "build_s": build_s,
            "recall_at_100_interest_queries": index_recall(index, exact, interest_queries),
            "recall_at_100_single_queries": index_recall(index, exact, single_queries),
            "queries": int(interest_queries.shape[0] + single_queries.shape[0]),
        }
        print(json.dumps(study | context | machine(index.threads)), flush=True)
        serving = Serving(models, index, topic_index, popular, centroids, settings, args.seed)
        recalls = {mode: mode_recall(mode, sample, serving, exact, topic_exact) for mode in MODES}
        if args.no_shared_ann:
            serving.topic_index = Unshared(topic_index)
        runs = ((w, t, m) for w in towers for t in thread_counts for m in MODES)
        for tower, threads, mode in runs:
            index.threads = threads
            serving.graphs = graphs if tower == "onnx" else None
            r_im, r_ex = recalls[mode]
            log(f"{factory}: {mode} requests, {tower} tower, {threads} search thread(s)")
            load_at_start = round(os.getloadavg()[0], 2)
            time_requests(mode, warmup, serving)  # distinct users: no cache reuse
            res = summarise(time_requests(mode, measured, serving))
            line = {
                "mode": mode,
                "tower": tower,
                "where": "in_process",
                "index": factory,
                **index.search_settings,
                **res,
                "recall_at_100": _mean(np.concatenate([r_im, r_ex])),
                "recall_at_100_by_kind": {"implicit": _mean(r_im)}
                | ({"explicit": _mean(r_ex)} if mode == "multi" else {}),
                "total": args.total,
                "overfetch": args.overfetch,
                "shared_ann": not args.no_shared_ann,
                **context,
                **machine(threads),
                "load_1m_at_start": load_at_start,
            }
            print(json.dumps(line), flush=True)
        if name == "hnsw" and not args.no_topic_study:
            log("topic study")
            for row in topic_study(world, vectors, index, topic_index, topic_exact, args.seed + 2):
                print(json.dumps(row | machine(index.threads)), flush=True)
        del serving, topic_index, index


def onnx_towers(
    models: Models, config: Config, threads: int, folder: Path
) -> dict[str, OnnxUserTower]:
    """Each mode's user tower exported to ONNX under `folder` (`export_model`, parity
    checked) and loaded as the service loads it (`OnnxUserTower`)."""
    graphs = {}
    for mode in MODES:
        model = models.multi if mode == "multi" else models.single
        t = time.perf_counter()
        export_model(
            model,
            folder / mode,
            name=mode,
            seq_len=config.examples.seq_len,
            n_items=int(models.vectors.shape[0]),
            model_version=f"latency-{mode}-{models.fingerprint}",
        )
        graphs[mode] = OnnxUserTower(folder / mode, threads=threads)
        log(f"{mode}: user tower exported to ONNX in {time.perf_counter() - t:.1f}s")
    return graphs


def _mean(x: np.ndarray) -> float | None:
    return round(float(x.mean()), 4) if x.size else None


if __name__ == "__main__":
    main()
