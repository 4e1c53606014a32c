"""Evaluation records from a prepared data directory: targets, histories, corpus, segments.

The split is `split_events` under `SplitConfig` (``which`` picks its test or
its validation users):

- ``time`` (the paper's, Section 4.1.1): every positive engagement in the
  evaluation window is a record, with the user's engagements strictly before it
  as history (so a later record of the same day sees the earlier ones). The
  corpus is ranked by positive engagements in the training window; segments are
  taken at the start of the evaluation window.
- ``users`` and ``comirec``: every positive target event of a held-out user is
  a record, with the user's history events before it; the corpus is ranked by
  the training targets' positive engagements; segments are taken at the user's
  first target.

Per user, the *first* record (by time) has exactly the history the user had when
the evaluation began: it is the user's request for the per-user metrics
(ComiRec metrics, coverage, diversity, overlap), with every record's target of
that user as the user's evaluation items.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from multiembed.config import EvalConfig, ExamplesConfig, SplitConfig
from multiembed.data.examples import build_examples
from multiembed.data.prepared import read_prepared_table
from multiembed.data.schema import (
    ENGAGEMENTS_FILE,
    ITEMS_FILE,
    USER_TOPICS_FILE,
    positive_mask,
    topics_matrix,
)
from multiembed.data.split import Role, split_events
from multiembed.errors import DataError
from multiembed.eval._sets import user_segments

MAX_USERS_SEED = 0
"""Seed of the user shuffle that `EvalConfig.max_users` subsamples with."""
_STORED = ("user", "target", "target_ts", "source_topic", "history", "history_valid", "followed")
"""The `EvalRecords` fields read from the examples store."""


@dataclass(frozen=True)
class EvalRecords:
    """``R`` evaluation records (one positive each) of ``U`` users, ordered by user then time.

    Attributes:
        user: ``[R]`` int64 user id.
        target: ``[R]`` int64 the positive item.
        target_ts: ``[R]`` int64 its timestamp.
        source_topic: ``[R]`` int64 topic logged with it, ``-1`` when none.
        history: ``[R, L]`` int64 item ids before the target, right-aligned, ``-1`` pads.
        history_valid: ``[R, L]`` bool valid item with a positive action.
        followed: ``[R, T]`` int64 topics followed at the target's time, ``-1`` pads.
        users: ``[U]`` distinct user ids, ascending.
        user_index: ``[R]`` int64 row of each record's user in `users`.
        first: ``[U]`` int64 the record of each user's evaluation request (its first).
        segment: ``[U]`` int8 segment codes (`multiembed.eval.metrics.SEGMENTS`).
    """

    user: np.ndarray
    target: np.ndarray
    target_ts: np.ndarray
    source_topic: np.ndarray
    history: np.ndarray
    history_valid: np.ndarray
    followed: np.ndarray
    users: np.ndarray
    user_index: np.ndarray
    first: np.ndarray
    segment: np.ndarray

    def __len__(self) -> int:
        return int(self.target.size)

    def user_items(self) -> list[np.ndarray]:
        """``U`` arrays: the distinct positive items of each user's records."""
        bounds = np.searchsorted(self.user_index, np.arange(self.users.size + 1))
        return [np.unique(self.target[a:b]) for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class EvalData:
    """Everything the evaluation reads from the data directory.

    Attributes:
        protocol: ``"users"``, ``"comirec"`` or ``"time"``.
        records: the `EvalRecords`.
        corpus: ``[C]`` int64 the most-engaged items, most engaged first (ties: smaller id).
        corpus_counts: ``[C]`` int64 their positive engagements in the training data.
        n_items: ``N``, item ids are ``0 .. N - 1``.
        item_topics: ``[N, T]`` int64 topics of each item, ``-1`` pads.
        n_records_available: records before the `EvalConfig.max_users` subsample.
    """

    protocol: str
    records: EvalRecords
    corpus: np.ndarray
    corpus_counts: np.ndarray
    n_items: int
    item_topics: np.ndarray
    n_records_available: int


def item_topic_matrix(items: pa.Table) -> tuple[int, np.ndarray]:
    """``(N, [N, T] int64)``: the topics of each item id from the items table, ``-1`` pads.

    >>> items = pa.table({"item_id": [1, 0], "topics": [[3], [4, 5]]})
    >>> item_topic_matrix(items)[1].tolist()
    [[4, 5], [3, -1]]
    """
    n = int(np.asarray(items.column("item_id").to_numpy()).max(initial=-1)) + 1
    return n, topics_matrix(items, n)


def load_eval_data(
    data_dir: Path,
    *,
    split: SplitConfig,
    examples: ExamplesConfig,
    config: EvalConfig,
    which: Literal["test", "valid"] = "test",
) -> EvalData:
    """Build the evaluation records and the corpus of a prepared data directory.

    ``which`` picks the held-out users: ``"test"`` for `evaluate`, ``"valid"`` for
    model selection during training (never the records `evaluate` reports).

    Raises:
        InputFileError: a canonical table is missing.
        DataError: the split leaves no evaluation record or no training engagement.
    """
    engagements = read_prepared_table(data_dir, ENGAGEMENTS_FILE)
    items = read_prepared_table(data_dir, ITEMS_FILE)
    follows_path = data_dir / USER_TOPICS_FILE
    follows = read_prepared_table(data_dir, USER_TOPICS_FILE) if follows_path.is_file() else None
    e_user = np.asarray(engagements.column("user_id").to_numpy(), dtype=np.int64)
    e_item = np.asarray(engagements.column("item_id").to_numpy(), dtype=np.int64)
    e_ts = np.asarray(engagements.column("ts").to_numpy(), dtype=np.int64)
    positive = positive_mask(engagements.column("action"))
    events = split_events(e_user, e_ts, positive, split)
    target_role, history_role, share = (
        (Role.TEST_TARGET, Role.TEST_HISTORY, split.test_share)
        if which == "test"
        else (Role.VALID_TARGET, Role.VALID_HISTORY, split.valid_share)
    )
    targets = events.roles == target_role
    history = events.roles == history_role if events.eval_history else None
    if not targets.any():
        raise DataError(
            f"{data_dir}: split.protocol = {split.protocol!r} leaves no {which} record "
            f"(split.{which}_share = {share:g})"
        )
    item_ids = np.asarray(items.column("item_id").to_numpy(), dtype=np.int64)
    n_items = int(max(item_ids.max(initial=-1), e_item.max(initial=-1))) + 1
    item_topics = topics_matrix(items, n_items)

    counts = np.bincount(e_item[events.train & positive], minlength=n_items)
    engaged = np.flatnonzero(counts > 0)
    if engaged.size == 0:
        raise DataError(f"{data_dir}: no positive engagement in the training data (no corpus)")
    corpus = engaged[np.lexsort((engaged, -counts[engaged]))][: config.corpus_size]

    with tempfile.TemporaryDirectory(prefix="multiembed-eval-") as tmp:
        store = build_examples(
            engagements,
            Path(tmp) / "records",
            seq_len=examples.seq_len,
            max_topics=examples.max_topics,
            targets=targets,
            history=history,
            items=items,
            user_topics=follows,
        )
        arrays = {name: np.array(getattr(store, name)) for name in _STORED}
        del store
    n_available = int(arrays["user"].size)
    keep = _subsample(arrays["user"], config.max_users)
    arrays = {k: v[keep] for k, v in arrays.items()}
    users, first, user_index = np.unique(arrays["user"], return_index=True, return_inverse=True)
    reference = (
        arrays["target_ts"][first]
        if events.eval_start is None
        else np.full(users.size, events.eval_start, dtype=np.int64)
    )
    segment = user_segments(
        e_user,
        e_ts,
        positive,
        users,
        reference,
        min_positives=config.core_min_positives,
        window_days=config.core_window_days,
    )
    records = EvalRecords(
        **arrays,
        users=users,
        user_index=user_index.astype(np.int64),
        first=first.astype(np.int64),
        segment=segment,
    )
    return EvalData(
        protocol=split.protocol,
        records=records,
        corpus=corpus.astype(np.int64),
        corpus_counts=counts[corpus].astype(np.int64),
        n_items=n_items,
        item_topics=item_topics,
        n_records_available=n_available,
    )


def _subsample(user: np.ndarray, max_records: int) -> np.ndarray:
    """Rows to keep: whole users in a seeded random order, while the records fit.

    At least one user is kept; 0 keeps everything. Whole users keep each user's
    first record (its evaluation request) in place.
    """
    if max_records <= 0 or user.size <= max_records:
        return np.arange(user.size)
    users, counts = np.unique(user, return_counts=True)
    order = np.random.default_rng(MAX_USERS_SEED).permutation(users.size)
    fits = np.cumsum(counts[order]) <= max_records
    chosen = users[order[: max(1, int(fits.sum()))]]
    return np.flatnonzero(np.isin(user, chosen))


def corpus_position(corpus: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``[R]`` row of each item in `corpus`, -1 when outside."""
    order = np.argsort(corpus, kind="stable")
    pos = np.minimum(np.searchsorted(corpus[order], items), max(corpus.size - 1, 0))
    return np.where(corpus[order][pos] == items, order[pos], -1)
