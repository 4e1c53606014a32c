"""The serving bundle: one model version with its item index, topic index and lookups.

`build_bundle(run_dir)` loads and verifies a trained run, embeds every item with
the run's model and builds (or, when present, loads and verifies) the item
index under ``RUN/index/<factory>/``::

    RUN/index/HNSW32/items/     the item index (manifest: the run's model_version)
    RUN/index/HNSW32/topics/    per-topic exact blocks (same model_version)

A saved index whose manifest names another model version, or whose files are
truncated or altered, is refused with `IndexIntegrityError`; it is never
silently rebuilt over, so a damaged deployment is seen, not hidden.

With a data directory, every known user's implicit embeddings are computed
once, in batches, when the bundle is built (`ServingBundle.user_queries`): their
histories are fixed for the bundle's life, so a request by ``user_id`` skips the
user tower, the largest part of its time. A request with a body history runs the
tower.

A bundle is immutable once built: the service swaps whole bundles, so a request
that took a reference to one finishes on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from multiembed.data.histories import latest_per_user
from multiembed.data.prepared import read_prepared_table
from multiembed.data.schema import (
    ENGAGEMENTS_FILE,
    ITEMS_FILE,
    USER_TOPICS_FILE,
    VOCAB_DIR,
    item_validity,
    positive_mask,
)
from multiembed.data.vocab import Vocab
from multiembed.errors import ConfigError
from multiembed.index import (
    MANIFEST_NAME,
    ExactIndex,
    FaissIndex,
    ItemTopics,
    Ranked,
    TopicIndex,
    VectorIndex,
    load_index,
)
from multiembed.retrieve import topic_centroids
from multiembed.runs import (
    INDEX_DIR,
    LoadedRun,
    RunIntegrityError,
    UserBatch,
    embed_items,
    embed_users,
    inference,
    load_run,
)
from multiembed.serve._tower import OnnxUserTower

_BATCH = 4096
_USER_BATCH = 512
PRECOMPUTE_MAX_BYTES = 2 << 30
"""Largest precomputed user table (``U x K x D`` float32) `build_bundle` keeps in memory."""


@dataclass(frozen=True)
class ServingVocab:
    """Raw ids <-> contiguous ids of users, items and topics, and topic names.

    Attributes:
        users, items, topics: the run's `Vocab` of each kind.
        topic_names: ``[T]`` display name of each contiguous topic id.
    """

    users: Vocab
    items: Vocab
    topics: Vocab
    topic_names: tuple[str, ...]

    @classmethod
    def load(cls, vocab_dir: Path) -> ServingVocab:
        """Read ``users``, ``items``, ``topics`` and ``topic_names`` parquet files."""
        missing = [
            name
            for name in ("users", "items", "topics")
            if not (vocab_dir / f"{name}.parquet").is_file()
        ]
        if missing:
            raise RunIntegrityError(vocab_dir, f"missing vocabulary file(s): {missing}")
        topics = Vocab.load(vocab_dir / "topics.parquet")
        names_path = vocab_dir / "topic_names.parquet"
        names = [str(t) for t in topics.raw.to_pylist()]
        if names_path.is_file():
            table = pq.read_table(names_path)
            for i, name in zip(
                table.column("id").to_pylist(), table.column("name").to_pylist(), strict=True
            ):
                if 0 <= int(i) < len(names) and name is not None:
                    names[int(i)] = str(name)
        return cls(
            users=Vocab.load(vocab_dir / "users.parquet"),
            items=Vocab.load(vocab_dir / "items.parquet"),
            topics=topics,
            topic_names=tuple(names),
        )


@dataclass(frozen=True)
class UserHistories:
    """Each known user's latest engagements and followed topics, from a data directory.

    Attributes:
        history: ``[U, L]`` int64 item ids, oldest first, right-aligned, ``-1`` pads.
        history_valid: ``[U, L]`` bool, a valid item engaged positively.
        followed: ``[U, T]`` int64 currently followed topics, most recent first, ``-1`` pads.
    """

    history: np.ndarray
    history_valid: np.ndarray
    followed: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.history.shape[0])


@dataclass(frozen=True)
class ServingBundle:
    """Everything one model version needs to answer requests; immutable.

    Attributes:
        model: the implicit model (``embed_users``, ``embed_items``), eval mode.
        explicit: a conditional (explicit) model with ``embed_conditioned``, or None:
            explicit lists then use the `topic_queries` stand-in (see `retrieve`).
        index: the item index for implicit embeddings.
        topic_index: per-topic blocks for explicit embeddings.
        item_topics: item -> topic membership (relevance filter).
        topics_of: ``[N, T]`` int64 topics of each item, ``-1`` pads (display).
        item_valid: ``[N]`` bool, items with every required feature.
        topic_centroids: ``[T, D]`` float32 unit mean item embedding of each topic
            (zero for a topic without items), in the implicit model's space.
        popular: the popularity fallback, most positive engagements first.
        vocab: `ServingVocab`.
        histories: `UserHistories` of the data directory, or None (no lookup by user).
        model_version: the run's model version; the index manifests carry it.
        seq_len: ``L`` history slots the model was trained with.
        max_topics: followed-topic slots the model was trained with.
        k_ex: explicit topics per request.
        explicit_index: an exact index of the conditional model's item vectors, which
            its embeddings search when the relevance filter is off; None: `index`.
        user_queries: `UserBatch` of every known user (row = contiguous user id): the
            implicit model's embeddings of `histories`, computed at build time; None
            without histories or above `PRECOMPUTE_MAX_BYTES` (the tower then runs
            per request).
        user_tower: the implicit model's user tower as its ONNX graph (`OnnxUserTower`),
            which embeds the histories of requests; None: PyTorch does.
    """

    model: Any
    explicit: Any | None
    index: VectorIndex
    topic_index: TopicIndex
    item_topics: ItemTopics
    topics_of: np.ndarray
    item_valid: np.ndarray
    topic_centroids: np.ndarray
    popular: Ranked
    vocab: ServingVocab
    histories: UserHistories | None
    model_version: str
    seq_len: int
    max_topics: int
    k_ex: int
    explicit_index: VectorIndex | None = None
    user_queries: UserBatch | None = None
    user_tower: OnnxUserTower | None = None

    @property
    def n_items(self) -> int:
        return int(self.item_valid.size)


def index_dir_for(run_dir: Path, factory: str) -> Path:
    """``RUN/index/<factory, with every character outside [A-Za-z0-9_.-] as _>``.

    >>> index_dir_for(Path("run"), "IVF256,Flat").as_posix()
    'run/index/IVF256_Flat'
    """
    return run_dir / INDEX_DIR / re.sub(r"[^A-Za-z0-9_.-]", "_", factory)


def embed_all_items(model: Any, n_items: int) -> np.ndarray:
    """``[N, D]`` float32 embeddings of items ``0 .. N - 1``, batched, no gradient."""
    with inference(model):
        return embed_items(model, np.arange(n_items), batch_size=_BATCH)


def _build_or_load_index(
    run: LoadedRun,
    directory: Path,
    vectors: np.ndarray,
    item_topics: ItemTopics,
    factory: str,
    threads: int,
) -> tuple[VectorIndex, TopicIndex]:
    items_dir, topics_dir = directory / "items", directory / "topics"
    version = run.model_version
    if (items_dir / MANIFEST_NAME).is_file() and (topics_dir / MANIFEST_NAME).is_file():
        index: VectorIndex = load_index(items_dir, expected_model_version=version, threads=threads)
        topic_index = TopicIndex.load(topics_dir, expected_model_version=version, ann=index)
        return index, topic_index
    ids = np.arange(vectors.shape[0], dtype=np.int64)
    faiss_index = FaissIndex(vectors.shape[1], factory, threads=threads)
    faiss_index.add(ids, vectors)  # trains an IVF/PQ index on `vectors` first
    topic_index = TopicIndex.build(ids, vectors, item_topics, ann=faiss_index)
    faiss_index.save(items_dir, model_version=version)
    topic_index.save(topics_dir, model_version=version)
    return faiss_index, topic_index


def _table(data_dir: Path, name: str, columns: list[str]) -> pa.Table | None:
    path = data_dir / name
    return read_prepared_table(data_dir, name, columns=columns) if path.is_file() else None


def _item_valid(data_dir: Path | None, n_items: int) -> np.ndarray:
    items = None if data_dir is None else _table(data_dir, ITEMS_FILE, ["item_id", "valid"])
    return item_validity(items, n_items, unlisted=True)


def _histories(
    data_dir: Path, n_users: int, n_items: int, item_valid: np.ndarray, seq_len: int, width: int
) -> tuple[UserHistories, Ranked]:
    eng = _table(data_dir, ENGAGEMENTS_FILE, ["user_id", "item_id", "ts", "action"])
    if eng is None:
        raise RunIntegrityError(data_dir / ENGAGEMENTS_FILE, "missing (needed to look up users)")
    user = np.asarray(eng.column("user_id").to_numpy(), dtype=np.int64)
    item = np.asarray(eng.column("item_id").to_numpy(), dtype=np.int64)
    ts = np.asarray(eng.column("ts").to_numpy(), dtype=np.int64)
    positive = positive_mask(eng.column("action"))
    known = (user >= 0) & (user < n_users) & (item >= 0) & (item < n_items)
    user, item, ts, positive = user[known], item[known], ts[known], positive[known]
    order = np.lexsort((np.arange(user.size), ts, user))  # by user, then time, stable
    u, it, ok = user[order], item[order], positive[order] & item_valid[item[order]]
    history = latest_per_user(u, it, n_users, seq_len, fill=-1)  # [U, L]
    valid = latest_per_user(u, ok, n_users, seq_len, fill=False)  # [U, L]

    counts = np.bincount(item[positive], minlength=n_items)
    engaged = np.flatnonzero((counts > 0) & item_valid)
    ranked = engaged[np.lexsort((engaged, -counts[engaged]))]
    popular = Ranked(ranked.astype(np.int64), counts[ranked].astype(np.float32))

    followed = np.full((n_users, width), -1, dtype=np.int64)
    follows = _table(
        data_dir, USER_TOPICS_FILE, ["user_id", "topic", "followed_at", "unfollowed_at"]
    )
    if follows is not None and follows.num_rows:
        fu = np.asarray(follows.column("user_id").to_numpy(), dtype=np.int64)
        ft = np.asarray(follows.column("topic").to_numpy(), dtype=np.int64)
        fat = np.asarray(follows.column("followed_at").to_numpy(), dtype=np.int64)
        live = np.asarray(follows.column("unfollowed_at").is_null().to_numpy(), dtype=bool)
        live &= (fu >= 0) & (fu < n_users)
        fu, ft, fat = fu[live], ft[live], fat[live]
        order = np.lexsort((-ft, fat, fu))  # by user, then time; a topic tie: larger first
        latest = latest_per_user(fu[order], ft[order], n_users, width, fill=-1)  # [U, width]
        followed = np.ascontiguousarray(latest[:, ::-1])  # most recent first, smaller topic
    return UserHistories(history, valid, followed), popular


def build_bundle(
    run_dir: str | Path,
    data_dir: str | Path | None = None,
    index_factory: str = "HNSW32",
    *,
    explicit: Any | None = None,
    explicit_run: str | Path | None = None,
    threads: int = 1,
    user_tower: str | Path | None = None,
) -> ServingBundle:
    """Load a trained run and make it servable: item index, topic index, lookups.

    Args:
        run_dir: a run directory written by `multiembed.train.train` (`multiembed.runs.load_run`).
        data_dir: the prepared data directory (user histories, followed topics,
            item validity, popularity); None serves body histories only, with an
            empty popularity list.
        index_factory: FAISS factory string of the item index (``"HNSW32"``,
            ``"Flat"``, ``"IVF1024,Flat"``).
        explicit: an optional conditional model (``embed_conditioned``,
            ``embed_items``, e.g. `multiembed.nn.conditional.ConditionalRetrievalModel`)
            over the same items; its topic index is built in memory (exact blocks).
        explicit_run: a Conditional Retrieval run directory (``model.kind = "explicit"``)
            trained on the same data, whose model is served as ``explicit``: the
            paper's framework, implicit and explicit interests in one service.
        threads: FAISS threads per search (the service runs requests in parallel).
        user_tower: the folder ``multiembed export-onnx RUN --out DIR`` wrote for this
            run: the histories of requests are embedded by onnxruntime (`OnnxUserTower`),
            about twice as fast as PyTorch at a batch of one; None: by PyTorch.

    Raises:
        RunIntegrityError: the run directory is damaged or mismatched, or ``data_dir``
            is not the data the run was trained on (another data fingerprint).
        ConfigError: ``run_dir`` is not an implicit run, ``explicit_run`` not an explicit
            one, or the two were trained on different data; ``user_tower`` exported from
            another run, or onnxruntime missing.
        IndexIntegrityError: a saved index is damaged or belongs to another model version.
    """
    run_path = Path(run_dir)
    data_path = None if data_dir is None else Path(data_dir)
    run = load_run(run_path, data_dir=data_path)  # refuses another dataset's directory
    if not hasattr(run.model, "embed_users"):
        raise ConfigError(
            [
                f"{run_path}: a Conditional Retrieval run (model.kind = 'explicit') is served "
                "beside an implicit run, e.g. `multiembed serve IMPLICIT_RUN --explicit "
                f"{run_path}`"
            ]
        )
    if explicit_run is not None:
        if explicit is not None:
            raise ConfigError(["build_bundle: pass explicit or explicit_run, not both"])
        explicit = _explicit_model(run, Path(explicit_run), data_path)
    run.model.train(False)
    tower = None
    if user_tower is not None:  # checked before the indexes are built
        seq_len = run.config.examples.seq_len
        tower = _onnx_tower(run.model, run.model_version, seq_len, Path(user_tower), threads)
    vocab = ServingVocab.load(run_path / VOCAB_DIR)
    n_items = run.features.n_items
    if len(vocab.items) != n_items:
        raise RunIntegrityError(
            run_path / VOCAB_DIR / "items.parquet",
            f"{len(vocab.items)} items in the vocabulary, {n_items} in the feature table",
        )
    vectors = embed_all_items(run.model, n_items)
    topics = run.features.topics
    topics_of = np.full((n_items, 1), -1, np.int64) if topics is None else topics.cpu().numpy()
    topics_of = topics_of.astype(np.int64)  # [N, T], -1 pads
    rows, cols = np.nonzero(topics_of >= 0)
    item_topics = ItemTopics.from_pairs(rows.astype(np.int64), topics_of[rows, cols])
    index, topic_index = _build_or_load_index(
        run, index_dir_for(run_path, index_factory), vectors, item_topics, index_factory, threads
    )
    explicit_index = None
    if explicit is not None:
        explicit.train(False)
        ex_vectors = embed_all_items(explicit, n_items)
        topic_index = TopicIndex.build(np.arange(n_items, dtype=np.int64), ex_vectors, item_topics)
        explicit_index = ExactIndex(ex_vectors.shape[1])
        explicit_index.add(np.arange(n_items, dtype=np.int64), ex_vectors)
    item_valid = _item_valid(data_path, n_items)
    cfg = run.config
    histories: UserHistories | None = None
    popular = Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32))
    if data_path is not None:
        histories, popular = _histories(
            data_path,
            len(vocab.users),
            n_items,
            item_valid,
            cfg.examples.seq_len,
            cfg.examples.max_topics,
        )
    return ServingBundle(
        user_queries=None if histories is None else _user_queries(run.model, histories),
        model=run.model,
        explicit=explicit,
        index=index,
        topic_index=topic_index,
        item_topics=item_topics,
        topics_of=topics_of,
        item_valid=item_valid,
        topic_centroids=topic_centroids(item_topics, vectors, len(vocab.topics)),
        popular=popular,
        vocab=vocab,
        histories=histories,
        model_version=run.model_version,
        seq_len=cfg.examples.seq_len,
        max_topics=cfg.examples.max_topics,
        k_ex=cfg.eval.k_ex,
        explicit_index=explicit_index,
        user_tower=tower,
    )


def with_user_tower(bundle: ServingBundle, folder: Path, *, threads: int = 1) -> ServingBundle:
    """`bundle` with request histories embedded by the user tower exported to `folder`
    (`OnnxUserTower`), checked to be the bundle's model: what ``build_bundle(user_tower=)``
    gives, for a bundle already built (``multiembed serve`` exports its own model).

    Raises:
        ConfigError: the tower reads followed topics, or `folder` holds another model's
            export (model version, K, D, L); onnxruntime missing.
        RunIntegrityError: a file of `folder` is missing or fails its checksum.
    """
    tower = _onnx_tower(bundle.model, bundle.model_version, bundle.seq_len, folder, threads)
    return replace(bundle, user_tower=tower)


def _onnx_tower(
    model: Any, version: str, seq_len: int, folder: Path, threads: int
) -> OnnxUserTower:
    """The user tower of `model` (of `version`) as exported to `folder`, checked to be its."""
    if uses_followed(model):
        raise ConfigError(
            [
                f"--user-tower {folder}: the run's user tower reads followed topics "
                "(model.followed_topics = true), which an exported graph has no input for"
            ]
        )
    return OnnxUserTower(
        folder,
        model_version=version,
        k=model.user_tower.k,
        dim=int(model.user_tower.dim),
        seq_len=seq_len,
        threads=threads,
    )


def uses_followed(model: Any) -> bool:
    """Whether the model's user tower takes followed topics (``n_followed_topics > 0``)."""
    return getattr(getattr(model, "user_tower", None), "followed_table", None) is not None


def _user_queries(model: Any, histories: UserHistories) -> UserBatch | None:
    """Every user's implicit embeddings as `multiembed.serve.retrieve` would compute them one
    by one (equal up to float rounding), or None when the table would exceed
    `PRECOMPUTE_MAX_BYTES`."""
    tower = getattr(model, "user_tower", None)
    k, dim = int(getattr(tower, "k", 0)), int(getattr(tower, "dim", 0))
    if not k or not dim or histories.n_users * k * dim * 4 > PRECOMPUTE_MAX_BYTES:
        return None
    with inference(model):
        return embed_users(
            model,
            histories.history,
            histories.history_valid,
            histories.followed if uses_followed(model) else None,
            batch_size=_USER_BATCH,
        )


def _explicit_model(run: LoadedRun, explicit_run: Path, data_dir: Path | None) -> Any:
    """The model of a Conditional Retrieval run trained on the same data as `run`."""
    cr = load_run(explicit_run, data_dir=data_dir)
    if not hasattr(cr.model, "embed_conditioned"):
        raise ConfigError(
            [
                f"--explicit {explicit_run}: an implicit run (model.kind = "
                f"'{cr.config.model.kind}'); expected a Conditional Retrieval run "
                "(model.kind = 'explicit')"
            ]
        )
    ours = run.manifest.get("data", {}).get("fingerprint")
    theirs = cr.manifest.get("data", {}).get("fingerprint")
    if ours != theirs or cr.features.n_items != run.features.n_items:
        raise ConfigError(
            [
                f"--explicit {explicit_run}: trained on other data than {run.run_dir} "
                f"(data fingerprints {str(theirs)[:12]} and {str(ours)[:12]}): train both "
                "on the same prepared directory"
            ]
        )
    return cr.model
