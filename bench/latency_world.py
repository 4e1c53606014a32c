"""The world `serve_latency.py` serves: clustered items, the library's default models, users.

- `make_world`: ``C`` items (ids ``0 .. C - 1``) whose pretrained vectors are unit
  vectors around cluster centres, with fine and broad topics (see `World`);
- `default_models`: the library's default model (``Config()``) and the
  single-embedding model (``model.name = "single"``) at their default sizes over
  that item table, untrained, both embedding items with one item tower, so that
  one index serves both; `Models.vectors` are those item embeddings;
- `make_users`: users with engagement histories drawn from their interest
  clusters (``seq_len`` items, shorter for some) and followed topics;
- `machine`: what a printed line says about the machine it was measured on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from machine import cpu_name
from multiembed.config import Config
from multiembed.index import ItemTopics
from multiembed.nn.features import ItemFeatures
from multiembed.nn.retrieval import RetrievalModel
from multiembed.runs import embed_items, inference, model_from_config

NOISE = 0.5  # per-dimension noise around a centre (centres are standard normal)
SHORT_SHARE = 0.3  # users with fewer engagements than seq_len (new or low-activity)
FOLLOWED_ELSEWHERE = 3  # followed topics of clusters absent from a user's history


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass
class World:
    """``C`` items in clusters, with topics; item ``i`` is row ``i`` of every array.

    Topics: broad topics ``0 .. broad - 1`` (Zipf-sized groups of clusters), then
    three fine topics per cluster; every item carries its cluster's broad topic, one
    of its fine topics and, for 30% of the items, a random extra fine topic.
    """

    x: np.ndarray  # [C, V] float32 unit pretrained vectors
    cluster: np.ndarray  # [C] cluster of each item
    by_cluster: np.ndarray  # [C] item ids sorted by cluster
    starts: np.ndarray  # [clusters + 1] where each cluster's items start in by_cluster
    topics: np.ndarray  # [C, 3] int64 topics of each item, -1 pads
    item_topics: ItemTopics
    fine_of_cluster: np.ndarray  # [clusters, 3] fine topics of each cluster
    broad_of_cluster: np.ndarray  # [clusters] broad topic of each cluster

    @property
    def ids(self) -> np.ndarray:
        return np.arange(self.x.shape[0], dtype=np.int64)

    @property
    def n_clusters(self) -> int:
        return int(self.broad_of_cluster.size)

    @property
    def n_topics(self) -> int:
        return int(self.fine_of_cluster.max()) + 1

    def members(self, cluster: int) -> np.ndarray:
        """Item ids of `cluster`."""
        return self.by_cluster[self.starts[cluster] : self.starts[cluster + 1]]

    def clusters_of(self, topic: int) -> np.ndarray:
        """The clusters whose items carry `topic` as their broad or fine topic."""
        n_broad = int(self.fine_of_cluster.min())  # fine topics are numbered after broad ones
        if topic >= n_broad:
            return np.array([(topic - n_broad) // 3])
        return np.flatnonzero(self.broad_of_cluster == topic)


def make_world(items: int, vector_dim: int, clusters: int, broad: int, seed: int) -> World:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, vector_dim))
    cluster = rng.integers(0, clusters, items)
    x = np.empty((items, vector_dim), dtype=np.float32)
    for lo in range(0, items, 200_000):  # in chunks: float64 temporaries stay small
        hi = min(items, lo + 200_000)
        x[lo:hi] = unit(
            centres[cluster[lo:hi]] + NOISE * rng.standard_normal((hi - lo, vector_dim))
        )
    ids = np.arange(items, dtype=np.int64)
    # fine topics: 3 per cluster (ids broad .. broad + 3 * clusters); broad: 0 .. broad - 1
    fine_of_cluster = broad + np.arange(3 * clusters).reshape(clusters, 3)
    zipf = 1.0 / np.arange(1, broad + 1)
    broad_of_cluster = rng.choice(broad, size=clusters, p=zipf / zipf.sum())
    topics = np.full((items, 3), -1, dtype=np.int64)
    topics[:, 0] = broad_of_cluster[cluster]
    topics[:, 1] = fine_of_cluster[cluster, rng.integers(0, 3, items)]
    extra = rng.random(items) < 0.3
    topics[extra, 2] = broad + rng.integers(0, 3 * clusters, int(extra.sum()))
    has = topics >= 0
    it = ItemTopics.from_pairs(np.repeat(ids, has.sum(axis=1)), topics[has])
    by_cluster = np.argsort(cluster, kind="stable").astype(np.int64)
    starts = np.searchsorted(cluster[by_cluster], np.arange(clusters + 1))
    return World(x, cluster, by_cluster, starts, topics, it, fine_of_cluster, broad_of_cluster)


class Models(NamedTuple):
    """The two towers a request runs, in eval mode, and the item embeddings they search.

    Attributes:
        multi: the default model (``Config().model``: DCM, its default ``k`` and ``dim``).
        single: the single-embedding model, same sizes, same item tower.
        vectors: ``[C, D]`` float32 unit item embeddings of both models.
        fingerprint: a short digest of `vectors` (names a cached index).
    """

    multi: RetrievalModel
    single: RetrievalModel
    vectors: np.ndarray
    fingerprint: str


def default_models(world: World, config: Config | None = None) -> Models:
    """`Models` over `world`'s item table (pretrained vectors and topics), untrained.

    The single model takes the multi model's item tower weights (with the default
    ``share_items`` the history summariser too): the two differ in their user
    towers only, and one index of their item embeddings serves both.
    """
    config = Config() if config is None else config
    features = ItemFeatures(
        n_items=world.x.shape[0],
        vector=torch.from_numpy(world.x),
        topics=torch.from_numpy(world.topics),
    )
    single_config = dataclasses.replace(
        config, model=dataclasses.replace(config.model, name="single")
    )
    multi = model_from_config(config, features, n_topics=world.n_topics).eval()
    single = model_from_config(single_config, features, n_topics=world.n_topics).eval()
    source, target = multi.item_tower, single.item_tower
    assert isinstance(source, torch.nn.Module)
    assert isinstance(target, torch.nn.Module)
    target.load_state_dict(source.state_dict())
    with inference(multi, single):
        vectors = embed_items(multi, world.ids, batch_size=8192)
        probe = world.ids[:: max(1, world.ids.size // 1000)]
        if not np.array_equal(embed_items(single, probe, batch_size=8192), vectors[probe]):
            raise RuntimeError("the single model does not embed items as the multi model does")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    digest = hashlib.sha1(vectors.tobytes()).hexdigest()[:12]
    return Models(multi, single, vectors, digest)


@dataclass
class User:
    """One request's user: a right-aligned history and followed topics.

    Attributes:
        user: the user's key (seeds topic sampling).
        history: ``[L]`` int64 item ids, oldest first, ``-1`` pads on the left.
        valid: ``[L]`` bool, a real engagement.
        followed: ``[F]`` int64 followed topics.
    """

    user: int
    history: np.ndarray
    valid: np.ndarray
    followed: np.ndarray


def make_users(
    world: World, n: int, *, seq_len: int, interests: tuple[int, int], seed: int
) -> list[User]:
    """`n` users, each with ``interests`` (lowest, highest) clusters engaged with in
    Dirichlet proportions over ``seq_len`` items (fewer for `SHORT_SHARE` of them),
    following a topic (fine, or its broad one) of each of the first five clusters and
    fine topics of `FOLLOWED_ELSEWHERE` clusters absent from the history."""
    rng = np.random.default_rng(seed)
    sizes = np.diff(world.starts)  # [clusters]
    present = np.flatnonzero(sizes > 0)
    out = []
    for user in range(n):
        count = min(present.size, int(rng.integers(interests[0], interests[1] + 1)))
        mine = rng.choice(present, size=count, replace=False)
        length = seq_len if rng.random() >= SHORT_SHARE else int(rng.integers(1, seq_len))
        where = rng.choice(mine, size=length, p=rng.dirichlet(np.ones(count)))  # [length]
        pick = world.starts[where] + (rng.random(length) * sizes[where]).astype(np.int64)
        history = np.full(seq_len, -1, dtype=np.int64)
        history[seq_len - length :] = world.by_cluster[pick]
        followed = set()
        for c in mine[:5]:
            broad = rng.random() < 0.3
            t = world.broad_of_cluster[c] if broad else rng.choice(world.fine_of_cluster[c])
            followed.add(int(t))
        for c in rng.choice(world.n_clusters, FOLLOWED_ELSEWHERE):
            followed.add(int(rng.choice(world.fine_of_cluster[c])))
        out.append(User(user, history, history >= 0, np.array(sorted(followed), dtype=np.int64)))
    return out


def machine(search_threads: int) -> dict[str, Any]:
    """What every printed line says about the machine: the CPU, the threads a request
    searches and embeds with, and the 1-minute load average when the line is written."""
    return {
        "cpu": cpu_name(),
        "threads": {"search": search_threads, "torch": torch.get_num_threads()},
        "load_1m": round(os.getloadavg()[0], 2),
    }
