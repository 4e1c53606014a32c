"""The held-out (test) users of the ComiRec split: requests, targets, seen items, training events.

`load_test_users` reads a prepared data directory once for everything the
benchmark ranks with: the model inputs of each test user's request (its first
evaluation record, `multiembed.eval.load_eval_data`), its distinct targets, the
items of its whole history (excluded from its ranking), its positive history
items (EASE's input), and the training users' positive engagements (most-popular
counts and EASE's matrix).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow.parquet as pq

from multiembed.config import Config
from multiembed.data.schema import ENGAGEMENTS_FILE, positive_mask
from multiembed.data.split import Role, split_events
from multiembed.eval import EvalData, load_eval_data


class HeldOutUsers(NamedTuple):
    """The ``U`` test users' requests and truths.

    Attributes:
        data: the evaluation data (records of the test users' targets).
        history, history_valid, followed: ``[U, L]``, ``[U, L]``, ``[U, T]`` the
            model inputs of each user's request (its first record).
        targets: ``U`` arrays of distinct target items.
        seen: ``U`` arrays, the items of every history event (excluded from ranking).
        liked: ``U`` arrays, the items of positive history events (EASE's input).
        train_user, train_item: ``[E']`` the training users' positive engagements.
    """

    data: EvalData
    history: np.ndarray
    history_valid: np.ndarray
    followed: np.ndarray
    targets: list[np.ndarray]
    seen: list[np.ndarray]
    liked: list[np.ndarray]
    train_user: np.ndarray
    train_item: np.ndarray


def _by_user(users: np.ndarray, event_user: np.ndarray, event_item: np.ndarray) -> list[np.ndarray]:
    """The distinct items of each of the sorted `users` among the events."""
    inside = np.isin(event_user, users)
    idx = np.searchsorted(users, event_user[inside])
    item = event_item[inside]
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(users.size + 1))
    return [np.unique(item[order[a:b]]) for a, b in itertools.pairwise(bounds)]


def load_test_users(data_dir: Path, config: Config) -> HeldOutUsers:
    """The test users of the ComiRec split of `data_dir` (split settings from `config`)."""
    split = dataclasses.replace(config.split, protocol="comirec")
    data = load_eval_data(data_dir, split=split, examples=config.examples, config=config.eval)
    rec = data.records
    table = pq.read_table(
        data_dir / ENGAGEMENTS_FILE, columns=["user_id", "item_id", "ts", "action"]
    )
    user = np.asarray(table.column("user_id").to_numpy(), dtype=np.int64)
    item = np.asarray(table.column("item_id").to_numpy(), dtype=np.int64)
    positive = positive_mask(table.column("action"))
    roles = split_events(user, table.column("ts"), positive, split).roles
    history = roles == Role.TEST_HISTORY
    train = (roles == Role.TRAIN) & positive
    return HeldOutUsers(
        data=data,
        history=rec.history[rec.first],
        history_valid=rec.history_valid[rec.first],
        followed=rec.followed[rec.first],
        targets=rec.user_items(),
        seen=_by_user(rec.users, user[history], item[history]),
        liked=_by_user(rec.users, user[history & positive], item[history & positive]),
        train_user=user[train],
        train_item=item[train],
    )
