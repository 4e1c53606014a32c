"""Arrow views of the synthetic world: raw table streams and ground-truth files.

Raw streams follow `multiembed.data.adapters.base` (raw keys, `_file` and
`_row` provenance). Ground truth uses the same raw keys, so it joins with the
prepared tables through their vocabularies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from multiembed.data.schema import table_schema
from multiembed.data.synthetic._policy import ACTION_NAMES, simulate
from multiembed.data.synthetic._world import (
    FOLLOW_REASONS,
    SEGMENTS,
    Users,
    World,
    subtopic_key,
    topic_key,
)

SOURCE_FILE: Final = "synthetic"
ITEM_BATCH: Final = 50_000


def _raw_schema(*columns: tuple[str, pa.DataType, bool]) -> pa.Schema:
    """A raw table's schema: `columns`, then the `_file` and `_row` provenance."""
    return table_schema(*columns, ("_file", pa.string(), False), ("_row", pa.int64(), False))


RAW_ENGAGEMENTS_SCHEMA: Final = _raw_schema(
    ("user_id", pa.int64(), False),
    ("item_id", pa.int64(), False),
    ("ts", pa.int64(), False),
    ("action", pa.string(), False),
    ("source_topic", pa.int64(), True),
)
RAW_ITEMS_SCHEMA: Final = _raw_schema(
    ("item_id", pa.int64(), False),
    ("topics", pa.list_(pa.int64()), False),
    ("vector", pa.list_(pa.float32()), True),
    ("categorical", pa.list_(pa.int64()), True),
)
RAW_USER_TOPICS_SCHEMA: Final = _raw_schema(
    ("user_id", pa.int64(), False),
    ("topic", pa.int64(), False),
    ("followed_at", pa.int64(), False),
    ("unfollowed_at", pa.int64(), True),
)

_ACTIONS = pa.array(ACTION_NAMES, pa.string())
_SEGMENTS = pa.array(SEGMENTS, pa.string())
_REASONS = pa.array(FOLLOW_REASONS, pa.string())
_TIERS = pa.array(("head", "torso", "tail", "long_term"), pa.string())
#: Recent interests after the head with at least this weight are "torso", the rest "tail".
TORSO_MIN_WEIGHT: Final = 0.1


def _names(values: pa.Array, codes: np.ndarray) -> pa.Array:
    return values.take(pa.array(codes, pa.int64()))


def _provenance(n: int, first_row: int) -> list[pa.Array]:
    return [
        pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [SOURCE_FILE]).cast(pa.string()),
        pa.array(np.arange(first_row, first_row + n, dtype=np.int64)),
    ]


def _nullable(values: np.ndarray) -> pa.Array:
    """int64 array where negative values (the -1 sentinel) become nulls."""
    return pa.array(values, pa.int64(), mask=values < 0)


def _list(
    values: np.ndarray, lengths: np.ndarray, value_type: pa.DataType, null: np.ndarray | None = None
) -> pa.Array:
    """List array of `values` cut by `lengths`; rows where `null` is True are null."""
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    mask = None if null is None else pa.array(null)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, value_type), mask=mask)


def item_batches(world: World) -> Iterator[pa.RecordBatch]:
    """The raw items table in batches of `ITEM_BATCH` rows.

    `topics` is `[parent topic, sub-topic]` plus the secondary topic when the
    item has one; `vector` is null for invalid items; `categorical` is
    `[format, creator bucket]`.
    """
    it = world.items
    n_t = world.n_topics
    for lo in range(0, len(it.subtopic), ITEM_BATCH):
        sl = slice(lo, min(lo + ITEM_BATCH, len(it.subtopic)))
        n = sl.stop - sl.start
        secondary = it.secondary[sl]
        topics = np.stack(
            (topic_key(it.topic[sl]), subtopic_key(it.subtopic[sl], n_t), topic_key(secondary)),
            axis=1,
        )
        lengths = np.where(secondary >= 0, 3, 2)
        flat_topics = topics[np.arange(3) < lengths[:, None]]
        valid = it.valid[sl]
        vec_lengths = np.where(valid, it.vectors.shape[1], 0)
        vectors = _list(it.vectors[sl][valid].ravel(), vec_lengths, pa.float32(), ~valid)
        n_cat = it.categorical.shape[1]
        categorical = _list(it.categorical[sl].ravel(), np.full(n, n_cat), pa.int64())
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(sl.start, sl.stop, dtype=np.int64) + 1),
                _list(flat_topics, lengths, pa.int64()),
                vectors,
                categorical,
                *_provenance(n, sl.start),
            ],
            schema=RAW_ITEMS_SCHEMA,
        )


def engagement_batches(world: World) -> Iterator[pa.RecordBatch]:
    """The raw engagement log: one batch per user block, rows sorted by (user, ts)."""
    first_row = 0
    for block in range(world.n_blocks):
        e = simulate(world, world.users(block), block)
        n = len(e)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(e.user + 1),
                pa.array(e.item + 1),
                pa.array(e.ts),
                _names(_ACTIONS, e.action),
                _nullable(topic_key(e.source_topic)),
                *_provenance(n, first_row),
            ],
            schema=RAW_ENGAGEMENTS_SCHEMA,
        )
        first_row += n


def _follows(users: Users) -> dict[str, pa.Array]:
    """Every follow of the block, in user order: user_id, topic, followed_at, unfollowed_at,
    reason."""
    row, slot = np.nonzero(users.follow_topic >= 0)
    return {
        "user_id": pa.array(users.index[row] + 1),
        "topic": pa.array(topic_key(users.follow_topic[row, slot])),
        "followed_at": pa.array(users.followed_at[row, slot]),
        "unfollowed_at": _nullable(users.unfollowed_at[row, slot]),
        "reason": _names(_REASONS, users.follow_reason[row, slot]),
    }


def user_topic_batches(world: World) -> Iterator[pa.RecordBatch]:
    """The raw follow table: one batch per user block."""
    first_row = 0
    for block in range(world.n_blocks):
        follows = _follows(world.users(block))
        del follows["reason"]
        n = len(follows["user_id"])
        yield pa.RecordBatch.from_arrays(
            [*follows.values(), *_provenance(n, first_row)], schema=RAW_USER_TOPICS_SCHEMA
        )
        first_row += n


# --- ground truth ---------------------------------------------------------------------------

GT_DIR: Final = "ground_truth"


def _topics_table(world: World) -> pa.Table:
    n_t, n_sub = world.n_topics, world.n_subtopics
    names = world.topic_names()
    t_idx = np.arange(n_t)
    s_idx = np.arange(n_sub)
    keys = np.concatenate((topic_key(t_idx), subtopic_key(s_idx, n_t)))
    parent = np.concatenate(
        (np.full(n_t, -1), topic_key(s_idx // world.config.subtopics_per_topic))
    )
    return pa.table(
        {
            "topic": pa.array(keys, pa.int64()),
            "name": pa.array([names[str(k)] for k in keys], pa.string()),
            "parent": _nullable(parent),
            "level": pa.array(np.concatenate((np.zeros(n_t), np.ones(n_sub))).astype(np.int8)),
            "mass": pa.array(
                np.concatenate(
                    (
                        world.subtopic_mass.reshape(n_t, -1).sum(axis=1),
                        world.subtopic_mass,
                    )
                )
            ),
        }
    )


def _items_table(world: World) -> pa.Table:
    it = world.items
    n_t = world.n_topics
    return pa.table(
        {
            "item_id": pa.array(np.arange(len(it.subtopic), dtype=np.int64) + 1),
            "subtopic": pa.array(subtopic_key(it.subtopic, n_t)),
            "topic": pa.array(topic_key(it.topic)),
            "secondary_topic": _nullable(topic_key(it.secondary)),
            "popularity": pa.array(it.popularity),
            "valid": pa.array(it.valid),
        }
    )


def _users_batch(world: World, users: Users) -> pa.RecordBatch:
    lt = users.long_term
    return pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(users.index + 1),
            "segment": _names(_SEGMENTS, users.segment),
            "long_term_subtopic": _nullable(subtopic_key(lt, world.n_topics)),
            "long_term_topic": _nullable(
                topic_key(np.where(lt >= 0, lt // world.config.subtopics_per_topic, -1))
            ),
        }
    )


def _interests_batch(world: World, users: Users) -> pa.RecordBatch:
    n_s = world.config.subtopics_per_topic
    sub = np.concatenate((users.interests, users.long_term[:, None]), axis=1)
    weight = np.concatenate((users.weights, users.long_term_weight[:, None]), axis=1)
    k = users.interests.shape[1]
    rank = np.broadcast_to(np.arange(k + 1), sub.shape)
    tier = np.where(rank == 0, 0, np.where(weight >= TORSO_MIN_WEIGHT, 1, 2))
    tier[:, k] = 3
    row, col = np.nonzero(sub >= 0)
    s = sub[row, col]
    return pa.RecordBatch.from_pydict(
        {
            "user_id": pa.array(users.index[row] + 1),
            "subtopic": pa.array(subtopic_key(s, world.n_topics)),
            "topic": pa.array(topic_key(s // n_s)),
            "weight": pa.array(weight[row, col]),
            "rank": pa.array(rank[row, col].astype(np.int32)),
            "tier": _names(_TIERS, tier[row, col]),
        }
    )


def write_world_ground_truth(world: World, out_dir: Path) -> Path:
    """Writes the world's ground truth under `out_dir / "ground_truth"` and returns that folder.

    Files (all keys raw, as in the raw tables):

    - `topics.parquet`: topic, name, parent (null for top-level), level (0/1), mass.
    - `items.parquet`: item_id, subtopic, topic, secondary_topic, popularity, valid.
    - `users.parquet`: user_id, segment, long_term_subtopic, long_term_topic.
    - `user_interests.parquet`: user_id, subtopic, topic, weight, rank, tier
      (head / torso / tail for recent interests, long_term); weights sum to 1 per user.
    - `followed.parquet`: user_id, topic, followed_at, unfollowed_at, reason
      (interest / long_term / noise).

    User tables are streamed block by block.
    """
    gt = Path(out_dir) / GT_DIR
    gt.mkdir(parents=True, exist_ok=True)
    pq.write_table(_topics_table(world), gt / "topics.parquet")
    pq.write_table(_items_table(world), gt / "items.parquet")
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for block in range(world.n_blocks):
            users = world.users(block)
            batches = {
                "users": _users_batch(world, users),
                "user_interests": _interests_batch(world, users),
                "followed": pa.RecordBatch.from_pydict(_follows(users)),
            }
            for name, batch in batches.items():
                if name not in writers:
                    writers[name] = pq.ParquetWriter(gt / f"{name}.parquet", batch.schema)
                writers[name].write_batch(batch)
    finally:
        for writer in writers.values():
            writer.close()
    return gt
