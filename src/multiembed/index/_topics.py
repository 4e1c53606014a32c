"""Item-to-topic membership, grouped by topic (one sorted block of item ids per topic)."""

from __future__ import annotations

import numpy as np

from multiembed.index._checks import describe
from multiembed.index.errors import IndexInputError


def _readonly(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False
    return x


class ItemTopics:
    """Which items carry which topic, stored by topic (CSR).

    ``topics [T]`` ascending; the members of ``topics[t]`` are
    ``items[offsets[t]:offsets[t + 1]]``, ascending. An item with several topics
    appears once in each of their blocks (``M`` (item, topic) pairs in all).

    >>> it = ItemTopics.from_pairs(np.array([4, 1, 4, 7]), np.array([2, 2, 9, 2]))
    >>> it.members(2).tolist(), it.members(9).tolist(), it.members(5).tolist()
    ([1, 4, 7], [4], [])
    >>> it.contains(np.array([1, 4, 7, 8]), 9).tolist()
    [False, True, False, False]
    """

    def __init__(self, topics: np.ndarray, offsets: np.ndarray, items: np.ndarray) -> None:
        where = "ItemTopics"
        if topics.ndim != 1 or offsets.shape != (topics.size + 1,) or items.ndim != 1:
            raise IndexInputError(
                where,
                "topics, offsets, items",
                "[T], [T + 1], [M] arrays",
                f"{describe(topics)}, {describe(offsets)}, {describe(items)}",
            )
        if offsets[0] != 0 or offsets[-1] != items.size or np.any(np.diff(offsets) < 0):
            raise IndexInputError(
                where, "offsets", f"non-decreasing from 0 to {items.size}", str(offsets[:8])
            )
        if np.any(np.diff(topics) <= 0):
            raise IndexInputError(where, "topics", "strictly ascending", str(topics[:8]))
        self.topics = _readonly(topics.astype(np.int64, copy=False))
        self.offsets = _readonly(offsets.astype(np.int64, copy=False))
        self.items = _readonly(items.astype(np.int64, copy=False))

    @classmethod
    def from_pairs(cls, item_ids: np.ndarray, topics: np.ndarray) -> ItemTopics:
        """Build from ``[M]`` (item, topic) pairs, any order; repeated pairs count once."""
        if (
            item_ids.ndim != 1
            or topics.shape != item_ids.shape
            or not np.issubdtype(item_ids.dtype, np.integer)
            or not np.issubdtype(topics.dtype, np.integer)
        ):
            raise IndexInputError(
                "ItemTopics.from_pairs",
                "item_ids, topics",
                "two [M] integer arrays",
                f"{describe(item_ids)}, {describe(topics)}",
            )
        pairs = np.unique(np.stack([topics.astype(np.int64), item_ids.astype(np.int64)]), axis=1)
        uniq, starts = np.unique(pairs[0], return_index=True)  # pairs sorted by (topic, item)
        offsets = np.append(starts, pairs.shape[1]).astype(np.int64)
        return cls(uniq, offsets, pairs[1].copy())

    def block(self, topic: int) -> tuple[int, int]:
        """``(start, stop)`` of `topic`'s members in `items`; ``(0, 0)`` for an unknown topic."""
        t = int(np.searchsorted(self.topics, topic))
        if t < self.topics.size and self.topics[t] == topic:
            return int(self.offsets[t]), int(self.offsets[t + 1])
        return 0, 0

    def blocks(self, topics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`block` of every one of `topics` ``[T]``: ``(starts [T], stops [T])`` int64.

        >>> it = ItemTopics.from_pairs(np.array([4, 1, 4, 7]), np.array([2, 2, 9, 2]))
        >>> [a.tolist() for a in it.blocks(np.array([9, 5, 2]))]
        [[3, 0, 0], [4, 0, 3]]
        """
        topics = np.asarray(topics, dtype=np.int64)
        if self.topics.size == 0:
            zeros = np.zeros(topics.shape, dtype=np.int64)
            return zeros, zeros.copy()
        t = np.minimum(np.searchsorted(self.topics, topics), self.topics.size - 1)
        known = self.topics[t] == topics
        return np.where(known, self.offsets[t], 0), np.where(known, self.offsets[t + 1], 0)

    def members(self, topic: int) -> np.ndarray:
        """``[B]`` ascending ids of the items carrying `topic` (empty if none)."""
        start, stop = self.block(topic)
        return self.items[start:stop]

    def size_of(self, topic: int) -> int:
        """Number of items carrying `topic`."""
        start, stop = self.block(topic)
        return stop - start

    def contains(self, item_ids: np.ndarray, topic: int) -> np.ndarray:
        """``[N]`` bool: does each of `item_ids` ``[N]`` carry `topic`?"""
        members = self.members(topic)
        if members.size == 0:
            return np.zeros(np.shape(item_ids), dtype=bool)
        pos = np.minimum(np.searchsorted(members, item_ids), members.size - 1)
        return members[pos] == item_ids
