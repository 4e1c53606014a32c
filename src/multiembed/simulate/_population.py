"""The simulated population: the synthetic world's users, their true interests and activity.

`load_population` reads a prepared synthetic data directory: the canonical tables
(ids as the trained runs know them) and the world's ``ground_truth/`` (true
interests, segments, each item's sub-topic), joined through the vocabularies.
`Population` holds what the simulator needs as arrays over contiguous ids, so
that tests can also build one by hand.

Cohorts (fixed before the test, from the logged engagements, so every arm has
the same users in each):

- ``core``: more than `SimulationConfig.core_saves` saves in the
  `SimulationConfig.core_days` before the test (the paper's footnote 4);
- the non-core cohorts of Table 7. The world defines active, low-activity and
  new users only; the others are defined here from the log, the smallest
  definitions that match their names:

  - ``new``: the world's new users (signed up on the log's last day);
  - ``resurrected``: engaged in the look-back, but not in its last 7 days
    (a dormant user returning during the test);
  - ``casual``: engaged on 2 or more distinct days of the look-back;
  - ``marginal``: engaged on at most one day (or never).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from multiembed.data import Vocab
from multiembed.data.histories import latest_per_user
from multiembed.data.prepared import read_prepared_table
from multiembed.data.schema import (
    ENGAGEMENTS_FILE,
    ITEMS_FILE,
    USER_TOPICS_FILE,
    VOCAB_DIR,
    item_validity,
    positive_mask,
    topics_matrix,
)
from multiembed.errors import DataError, InputFileError
from multiembed.index import ItemTopics
from multiembed.simulate._config import SimulationConfig

DAY: Final = 86_400
RECENT_DAYS: Final = 7  # a user idle this long before the test and active before is resurrected
COHORTS: Final = ("core", "casual", "marginal", "resurrected", "new")
CORE, CASUAL, MARGINAL, RESURRECTED, NEW = range(5)
GROUND_TRUTH: Final = "ground_truth"
SAVE: Final = "save"


@dataclass(frozen=True, kw_only=True)
class Population:
    """``U`` users and ``N`` items of a simulated world, over the prepared data's ids.

    Topic ids ``T`` are those of the prepared data: top-level topics and sub-topics
    share one id space, as in the items' ``topics`` lists.

    Attributes:
        interest: ``[U, T]`` float64 weight of each sub-topic in the user's true
            interests (recent and long-term; 0 elsewhere; sums to 1 per user).
        item_subtopic: ``[N]`` int64 sub-topic of each item.
        item_topic: ``[N]`` int64 parent topic of each item.
        item_topics: ``[N, W]`` int64 every topic an item carries (``-1`` pads):
            what the relevance filter and the legacy retriever match.
        item_valid: ``[N]`` bool, items with the features a model needs.
        popularity: ``[N]`` float64 the world's popularity of each item.
        followed: ``[U, F]`` int64 topics followed when the test starts, ``-1`` pads.
        history: ``[U, L]`` int64 the last positive engagements before the test,
            right-aligned, ``-1`` pads.
        rate: ``[U]`` float64 sessions per day (the user's activity level).
        cohort: ``[U]`` int64 code into `COHORTS`.
    """

    interest: np.ndarray
    item_subtopic: np.ndarray
    item_topic: np.ndarray
    item_topics: np.ndarray
    item_valid: np.ndarray
    popularity: np.ndarray
    followed: np.ndarray
    history: np.ndarray
    rate: np.ndarray
    cohort: np.ndarray

    @property
    def n_users(self) -> int:
        return int(self.interest.shape[0])

    @cached_property
    def topic_members(self) -> ItemTopics:
        """The valid items carrying each topic (`item_topics` of the `item_valid` items)."""
        items, slot = np.nonzero((self.item_topics >= 0) & self.item_valid[:, None])
        return ItemTopics.from_pairs(items, self.item_topics[items, slot])

    def true_interest(
        self, users: np.ndarray, items: np.ndarray, config: SimulationConfig
    ) -> np.ndarray:
        """``[B, M]`` probability-scale interest of users ``[B]`` in items ``[B, M]``.

        The world's acceptance rule: ``0.5 + 0.5 * w / w_max`` for an item of a
        sub-topic of weight ``w > 0``, `SimulationConfig.sibling_interest` for a
        sub-topic under the parent of one of the user's interests, and
        `SimulationConfig.stranger_interest` otherwise.

        >>> pop = tiny_population()
        >>> pop.true_interest(np.array([0]), np.array([[0, 1, 2]]), SimulationConfig()).tolist()
        [[1.0, 0.2, 0.02]]
        """
        weights = self.interest[users]  # [B, T]
        w = np.take_along_axis(weights, self.item_subtopic[items], axis=1)  # [B, M]
        w_max = weights.max(axis=1, keepdims=True)
        parent_weight = _parent_weight(weights, self.item_subtopic, self.item_topic)
        sibling = np.take_along_axis(parent_weight, self.item_topic[items], axis=1) > 0
        return np.where(
            w > 0,
            0.5 + 0.5 * w / np.where(w_max > 0, w_max, 1.0),
            np.where(sibling, config.sibling_interest, config.stranger_interest),
        )


def _parent_weight(
    weights: np.ndarray, item_subtopic: np.ndarray, item_topic: np.ndarray
) -> np.ndarray:
    """``[B, T]`` total weight of each topic's sub-topics."""
    n_t = weights.shape[1]
    parent = np.full(n_t, -1, dtype=np.int64)
    parent[item_subtopic] = item_topic
    out = np.zeros_like(weights)
    has = np.flatnonzero(parent >= 0)
    np.add.at(out.T, parent[has], weights[:, has].T)
    return out


def tiny_population() -> Population:
    """Two users, three items of topic ids 0 (parent) and 1, 2, 3 (its sub-topics 1, 2; 3
    under parent 4), for examples: user 0 loves sub-topic 1, user 1 sub-topic 3."""
    interest = np.zeros((2, 5))
    interest[0, 1] = 1.0
    interest[1, 3] = 1.0
    return Population(
        interest=interest,
        item_subtopic=np.array([1, 2, 3]),
        item_topic=np.array([0, 0, 4]),
        item_topics=np.array([[0, 1], [0, 2], [4, 3]]),
        item_valid=np.ones(3, dtype=bool),
        popularity=np.full(3, 1.0 / 3.0),
        followed=np.array([[0], [4]]),
        history=np.array([[-1, 0], [-1, 2]]),
        rate=np.ones(2),
        cohort=np.array([CORE, NEW]),
    )


def cohorts(
    user: np.ndarray,
    ts: np.ndarray,
    save: np.ndarray,
    positive: np.ndarray,
    *,
    n_users: int,
    start: int,
    new: np.ndarray,
    config: SimulationConfig,
) -> np.ndarray:
    """``[U]`` cohort codes (`COHORTS`) from the engagements logged before the test.

    Args:
        user, ts, save, positive: ``[E]`` user id, seconds, save flag and positive flag.
        n_users: ``U``.
        start: first second of the test; only engagements before it count.
        new: ``[U]`` bool, the world's new users.
        config: `SimulationConfig.core_saves` and `core_days`.

    >>> d = DAY
    >>> u = np.array([0] * 5 + [1, 1, 2, 3])
    >>> t = np.array([1, 2, 3, 4, 5, 1, 22, 2, 25]) * d
    >>> codes = cohorts(u, t, np.ones(9, bool), np.ones(9, bool), n_users=5, start=28 * d,
    ...                 new=np.array([False] * 4 + [True]), config=SimulationConfig())
    >>> [COHORTS[c] for c in codes]
    ['core', 'casual', 'resurrected', 'marginal', 'new']
    """
    before = ts < start
    lookback = before & (ts >= start - config.core_days * DAY)
    saves = np.bincount(user[lookback & save], minlength=n_users)
    pos = lookback & positive
    recent = np.bincount(user[pos & (ts >= start - RECENT_DAYS * DAY)], minlength=n_users) > 0
    ever = np.bincount(user[pos], minlength=n_users) > 0
    day_pairs = np.unique(user[pos] * (2 * config.core_days + 2) + (start - ts[pos]) // DAY)
    days = np.bincount(day_pairs // (2 * config.core_days + 2), minlength=n_users)
    out = np.where(days >= 2, CASUAL, MARGINAL)
    out = np.where(ever & ~recent, RESURRECTED, out)
    out = np.where(new, NEW, out)
    return np.where(saves > config.core_saves, CORE, out).astype(np.int64)


def _read_truth(data_dir: Path, name: str) -> pa.Table:
    path = data_dir / GROUND_TRUTH / f"{name}.parquet"
    if not path.is_file():
        raise InputFileError(
            path,
            "missing",
            expected="a synthetic world's ground truth (prepare it with "
            "`multiembed prepare --dataset synthetic`): the simulator needs users' true interests",
        )
    return pq.read_table(path)


def _ints(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _encode(vocab: Vocab, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return vocab.encode(column.cast(pa.int64()).cast(pa.string()).cast(vocab.raw.type))


def load_population(data_dir: Path, config: SimulationConfig) -> Population:
    """The population of the synthetic world prepared in `data_dir`.

    Raises:
        InputFileError: a canonical table or the ground truth is missing.
        DataError: the ground truth does not match the prepared tables.
    """
    data_dir = Path(data_dir)
    for name in (ENGAGEMENTS_FILE, ITEMS_FILE, USER_TOPICS_FILE):
        if not (data_dir / name).is_file():
            raise InputFileError(
                data_dir / name, "missing", expected="a data directory written by `prepare`"
            )
    vocab = {
        k: Vocab.load(data_dir / VOCAB_DIR / f"{k}.parquet") for k in ("users", "items", "topics")
    }
    n_users, n_items, n_topics = (len(vocab[k]) for k in ("users", "items", "topics"))

    items = read_prepared_table(data_dir, ITEMS_FILE)
    item_topics = topics_matrix(items, n_items)
    item_valid = item_validity(items, n_items, unlisted=False)

    truth_items = _read_truth(data_dir, "items")
    rows = _encode(vocab["items"], truth_items.column("item_id"))
    known = rows >= 0
    item_subtopic = np.full(n_items, -1, dtype=np.int64)
    item_topic = np.full(n_items, -1, dtype=np.int64)
    popularity = np.zeros(n_items)
    item_subtopic[rows[known]] = _encode(vocab["topics"], truth_items.column("subtopic"))[known]
    item_topic[rows[known]] = _encode(vocab["topics"], truth_items.column("topic"))[known]
    popularity[rows[known]] = np.asarray(truth_items.column("popularity").to_numpy())[known]
    if (item_subtopic < 0).any() or (item_topic < 0).any():
        raise DataError(
            f"{data_dir / GROUND_TRUTH / 'items.parquet'}: {int((item_subtopic < 0).sum())} "
            "prepared item(s) have no sub-topic in the ground truth (not the same world)"
        )

    interests = _read_truth(data_dir, "user_interests")
    u = _encode(vocab["users"], interests.column("user_id"))
    s = _encode(vocab["topics"], interests.column("subtopic"))
    keep = (u >= 0) & (s >= 0)
    interest = np.zeros((n_users, n_topics))
    np.add.at(interest, (u[keep], s[keep]), np.asarray(interests.column("weight").to_numpy())[keep])

    engagements = read_prepared_table(data_dir, ENGAGEMENTS_FILE)
    e_user = _ints(engagements.column("user_id"))
    e_item = _ints(engagements.column("item_id"))
    e_ts = _ints(engagements.column("ts"))
    action = engagements.column("action")
    positive = positive_mask(action)
    save = np.asarray(pc.equal(action, SAVE).to_numpy(zero_copy_only=False), dtype=bool)
    start = int(e_ts.max()) + 1 if e_ts.size else 0

    users = _read_truth(data_dir, "users")
    gu = _encode(vocab["users"], users.column("user_id"))
    new = np.zeros(n_users, dtype=bool)
    is_new = np.asarray(pc.equal(users.column("segment"), "new").to_numpy(zero_copy_only=False))
    new[gu[(gu >= 0) & is_new]] = True

    follows = read_prepared_table(data_dir, USER_TOPICS_FILE)
    f_user = _ints(follows.column("user_id"))
    f_topic = _ints(follows.column("topic"))
    f_at = _ints(follows.column("followed_at"))
    f_until = _ints(follows.column("unfollowed_at").fill_null(np.iinfo(np.int64).max))
    following = (f_at < start) & (f_until >= start)
    followed = _padded(f_user[following], f_topic[following], n_users)

    order = np.lexsort((e_ts, e_user))
    pos_rows = order[positive[order]]
    history = latest_per_user(
        e_user[pos_rows], e_item[pos_rows], n_users, config.history_len, fill=-1
    )

    first_seen = np.full(n_users, start, dtype=np.int64)
    np.minimum.at(first_seen, f_user, f_at)
    np.minimum.at(first_seen, e_user, e_ts)
    log_start = int(e_ts.min()) if e_ts.size else start
    observed_days = np.maximum(1.0, (start - np.maximum(first_seen, log_start)) / DAY)
    n_pos = np.bincount(e_user[positive], minlength=n_users)
    rate = np.maximum(
        config.min_sessions_per_day, n_pos / observed_days / config.engagements_per_session
    )
    cohort = cohorts(
        e_user, e_ts, save, positive, n_users=n_users, start=start, new=new, config=config
    )
    return Population(
        interest=interest,
        item_subtopic=item_subtopic,
        item_topic=item_topic,
        item_topics=item_topics,
        item_valid=item_valid,
        popularity=popularity,
        followed=followed,
        history=history,
        rate=rate,
        cohort=cohort,
    )


def _padded(user: np.ndarray, value: np.ndarray, n_users: int) -> np.ndarray:
    """``[U, F]`` distinct values of each user, ascending, ``-1`` pads."""
    pairs = np.unique(np.stack((user, value), axis=1), axis=0)  # [P, 2] sorted, maybe empty
    counts = np.bincount(pairs[:, 0], minlength=n_users)
    out = np.full((n_users, max(1, int(counts.max()) if counts.size else 1)), -1, np.int64)
    col = np.arange(pairs.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    out[pairs[:, 0], col] = pairs[:, 1]
    return out
