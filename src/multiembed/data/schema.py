"""The canonical tables: fixed Arrow schemas and the action vocabulary.

Every dataset is prepared into three Parquet tables with these schemas. Ids in
canonical tables are contiguous (0..n-1); `vocab/*.parquet` beside the tables
maps them back to the raw ids of the source.

- `engagements.parquet`: one row per user action on an item.
- `items.parquet`: one row per item, with topics, an optional dense vector
  (pretrained embedding), optional categorical features and a validity flag.
- `user_topics.parquet`: follow events on topics (explicit interests).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Action kinds a user can take on an item. Positive kinds are training targets;
#: negative kinds stay in histories (marked) and make an item invalid as a
#: cluster seed (paper Eq. 6).
POSITIVE_ACTIONS: Final = (
    "click",
    "save",
    "view",
    "cart",
    "purchase",
    "like",
    "rate",
    "tag",
    "play",
    "favorite",
)
NEGATIVE_ACTIONS: Final = ("hide", "dislike", "skip", "rate_low")
ACTIONS: Final = POSITIVE_ACTIONS + NEGATIVE_ACTIONS


def positive_mask(action: pa.ChunkedArray) -> np.ndarray:
    """``[E]`` bool: is each engagement's action one of `POSITIVE_ACTIONS`.

    >>> positive_mask(pa.chunked_array([["click", "hide", "save"]])).tolist()
    [True, False, True]
    """
    return np.asarray(pc.is_in(action, pa.array(POSITIVE_ACTIONS)).to_numpy(), dtype=bool)


#: File names of the canonical tables inside a prepared data directory.
ENGAGEMENTS_FILE: Final = "engagements.parquet"
ITEMS_FILE: Final = "items.parquet"
USER_TOPICS_FILE: Final = "user_topics.parquet"
QUARANTINE_FILE: Final = "quarantine.parquet"
REPORT_FILE: Final = "report.json"
#: SHA-256 and size of every file `prepare` wrote (see `multiembed.data.prepared`).
MANIFEST_FILE: Final = "manifest.json"
VOCAB_DIR: Final = "vocab"
#: `vocab/item_titles.parquet`: id (contiguous item id) and title, when the source has titles.
ITEM_TITLES_FILE: Final = "item_titles.parquet"


def table_schema(*columns: tuple[str, pa.DataType, bool]) -> pa.Schema:
    """An Arrow schema of `(name, type, nullable)` columns."""
    return pa.schema([pa.field(name, kind, nullable=null) for name, kind, null in columns])


ENGAGEMENTS_SCHEMA: Final = table_schema(
    ("user_id", pa.int64(), False),
    ("item_id", pa.int64(), False),
    ("ts", pa.int64(), False),  # seconds since the epoch
    ("action", pa.string(), False),  # one of ACTIONS
    ("source_topic", pa.int32(), True),  # logged condition, if any
)

USER_TOPICS_SCHEMA: Final = table_schema(
    ("user_id", pa.int64(), False),
    ("topic", pa.int32(), False),
    ("followed_at", pa.int64(), False),
    ("unfollowed_at", pa.int64(), True),
)


def items_schema(vector_dim: int | None, n_categorical: int) -> pa.Schema:
    """Schema of `items.parquet`.

    Args:
        vector_dim: length of the dense feature vector, or None when the
            dataset has none.
        n_categorical: number of categorical feature fields (0 for none).
            Each item stores them as a fixed-length list of int32 codes where
            -1 would be ambiguous, so a missing value is a null element.

    A row's `valid` is False when a required feature is missing (null vector,
    null categorical value): such items are masked out of cluster
    initialisation (paper Eq. 6).

    >>> items_schema(4, 2).field("vector").type
    FixedSizeListType(fixed_size_list<item: float>[4])
    """
    columns = [("item_id", pa.int64(), False), ("topics", pa.list_(pa.int32()), False)]
    if vector_dim is not None:
        columns.append(("vector", pa.list_(pa.float32(), vector_dim), True))
    if n_categorical > 0:
        columns.append(("categorical", pa.list_(pa.int32(), n_categorical), True))
    columns.append(("valid", pa.bool_(), False))
    return table_schema(*columns)


def item_validity(items: pa.Table | None, n_items: int, *, unlisted: bool) -> np.ndarray:
    """``[n_items]`` bool: the `valid` flag of each item of an items table (a null is
    False); `unlisted` for an id the table (or None, no table) does not list. Ids
    outside ``[0, n_items)`` are ignored.

    >>> items = pa.table({"item_id": [2, 0, 7], "valid": [True, None, True]})
    >>> item_validity(items, 4, unlisted=True).tolist()
    [False, True, True, True]
    """
    valid = np.full(n_items, unlisted)
    if items is None:
        return valid
    ids = np.asarray(items.column("item_id").to_numpy(), dtype=np.int64)
    flags = np.asarray(items.column("valid").fill_null(False).to_numpy(), dtype=bool)
    keep = (ids >= 0) & (ids < n_items)
    valid[ids[keep]] = flags[keep]
    return valid


def topics_matrix(items: pa.Table, n_items: int) -> np.ndarray:
    """``[n_items, T]`` int64: the `topics` of each item id of an items table, ``-1`` pads
    (``T``: the longest list, at least 1).

    >>> items = pa.table({"item_id": [1, 0], "topics": [[3], [4, 5]]})
    >>> topics_matrix(items, 3).tolist()
    [[4, 5], [3, -1], [-1, -1]]
    """
    ids = np.asarray(items.column("item_id").to_numpy(), dtype=np.int64)
    lists = items.column("topics").combine_chunks()
    lengths = np.asarray(pc.list_value_length(lists).fill_null(0).to_numpy(), dtype=np.int64)
    out = np.full((n_items, max(1, int(lengths.max()) if lengths.size else 1)), -1, np.int64)
    flat = np.asarray(pc.list_flatten(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
    col = np.arange(flat.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[np.repeat(ids, lengths), col] = flat
    return out


#: One row per rejected input row and rule. `row` is the 1-based line number
#: in the source file for text sources (the header is line 1), or the 0-based
#: record index for binary and generated sources.
QUARANTINE_SCHEMA: Final = table_schema(
    ("table", pa.string(), False),
    ("source_file", pa.string(), False),
    ("row", pa.int64(), False),
    ("column", pa.string(), False),
    ("rule", pa.string(), False),
    ("value", pa.string(), True),
)
