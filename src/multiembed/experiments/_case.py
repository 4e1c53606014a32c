"""A case-study user of a trained run: the history the user tower reads, and topic names."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow.parquet as pq

from multiembed.data.schema import VOCAB_DIR
from multiembed.eval._records import EvalData

TOPIC_NAMES = "topic_names.parquet"


class Topics(NamedTuple):
    """Topic names and the top-level topic of every topic id (itself for a top-level one)."""

    names: list[str]
    top: np.ndarray

    def name(self, topic: int) -> str:
        return self.names[topic] if 0 <= topic < len(self.names) else f"topic {topic}"


def load_topics(data_dir: Path, n_topics: int) -> Topics:
    """``vocab/topic_names.parquet`` of a data directory (plain numbers when it is absent)."""
    path = data_dir / VOCAB_DIR / TOPIC_NAMES
    names = [f"topic {t}" for t in range(n_topics)]
    top = np.arange(max(n_topics, 1), dtype=np.int64)
    if path.is_file():
        table = pq.read_table(path).to_pylist()
        size = max([n_topics, *(int(r["id"]) + 1 for r in table)])
        names = [f"topic {t}" for t in range(size)]
        top = np.arange(size, dtype=np.int64)
        for r in table:
            names[int(r["id"])] = str(r["name"])
            if r.get("parent") is not None:
                top[int(r["id"])] = int(r["parent"])
    return Topics(names, top)


def item_main_topic(item_topics: np.ndarray, topics: Topics) -> np.ndarray:
    """``[N]`` the top-level topic of each item's first topic (``-1``: none)."""
    first = item_topics[:, 0]
    return np.where(first >= 0, topics.top[np.clip(first, 0, topics.top.size - 1)], -1)


def pick_record(data: EvalData, main_topic: np.ndarray) -> int:
    """The first-record of the user whose valid history spans the most top-level topics.

    Ties go to the longer history, then the smaller user id: deterministic.
    """
    rec = data.records
    best, best_key = int(rec.first[0]), (-1, -1)
    for r in rec.first:
        h = rec.history[r][rec.history_valid[r]]
        t = main_topic[h]
        key = (np.unique(t[t >= 0]).size, h.size)
        if key > best_key:
            best, best_key = int(r), key
    return best
