"""The item table of a prepared data directory, as a model embeds items from it.

- `load_item_features`: ``items.parquet`` as an `ItemFeatures` table indexed by
  item id (vector + present mask, categorical codes with ``-1`` for missing,
  topics padded with ``-1``).
- `n_item_ids`, `n_topic_ids`: the sizes of the item and topic id spaces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from multiembed.data.prepared import read_prepared_table
from multiembed.data.schema import ITEMS_FILE, USER_TOPICS_FILE, VOCAB_DIR, topics_matrix
from multiembed.errors import DataError, InputFileError
from multiembed.nn.features import ItemFeatures

_PREPARED = "a directory written by `multiembed prepare`"


def prepared_table(data_dir: Path, name: str, *, required: bool = True) -> pa.Table | None:
    """The prepared table ``name`` of ``data_dir``, verified; None when it is absent and
    not ``required`` (absent and required: an `InputFileError`)."""
    path = data_dir / name
    if not path.is_file():
        if required:
            raise InputFileError(path, "missing", expected=_PREPARED)
        return None
    return read_prepared_table(data_dir, name)


def _vocab_size(data_dir: Path, name: str) -> int | None:
    path = data_dir / VOCAB_DIR / name
    return pq.ParquetFile(path).metadata.num_rows if path.is_file() else None


def n_item_ids(data_dir: Path, items: pa.Table) -> int:
    """Size of the item id space: the item vocabulary, or the largest id in items + 1."""
    ids = items.column("item_id").to_numpy()
    from_table = int(ids.max()) + 1 if ids.size else 0
    return max(_vocab_size(data_dir, "items.parquet") or 0, from_table)


def n_topic_ids(data_dir: Path) -> int:
    """Size of the topic id space (the topic vocabulary, else the largest topic + 1, at least 1)."""
    size = _vocab_size(data_dir, "topics.parquet")
    if size:
        return size
    top = 0
    follows = prepared_table(data_dir, USER_TOPICS_FILE, required=False)
    if follows is not None and follows.num_rows:
        top = int(np.asarray(follows.column("topic").to_numpy()).max()) + 1
    items = prepared_table(data_dir, ITEMS_FILE)
    assert items is not None
    flat = items.column("topics").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return max(top, int(flat.max(initial=-1)) + 1, 1)


def load_item_features(data_dir: Path) -> ItemFeatures:
    """Read ``DATA/items.parquet`` into an `ItemFeatures` table of ``N`` items.

    Rows are placed at their ``item_id``; an id with no row (or a row with a null
    vector) has ``vector_present`` False, codes ``-1`` and no topics. A vector
    with a non-finite value counts as missing. Topics are padded with ``-1`` to
    the longest list ``T`` (at least 1).

    Raises:
        InputFileError: ``items.parquet`` missing or unreadable.

    Example:
        >>> import tempfile
        >>> from multiembed.data.schema import items_schema
        >>> d = Path(tempfile.mkdtemp())
        >>> pq.write_table(pa.table({
        ...     "item_id": [1, 0], "topics": [[2], [0, 1]],
        ...     "vector": [None, [0.5, 1.0]], "categorical": [[3], [None]],
        ...     "valid": [False, True]}, schema=items_schema(2, 1)), d / "items.parquet")
        >>> f = load_item_features(d)
        >>> f.n_items, f.vector_present.tolist(), f.codes.tolist(), f.topics.tolist()
        (2, [True, False], [[-1], [3]], [[0, 1], [2, -1]])
    """
    items = prepared_table(data_dir, ITEMS_FILE)
    assert items is not None
    n = n_item_ids(data_dir, items)
    if n == 0:
        raise DataError(f"{data_dir / ITEMS_FILE}: no items (expected at least one)")
    rows = np.asarray(items.column("item_id").to_numpy(), dtype=np.int64)

    vector = present = codes = None
    if "vector" in items.column_names:
        values, has = _fixed_lists(items.column("vector"), np.float32, np.nan)
        has &= np.isfinite(values).all(axis=1)
        vector = np.zeros((n, values.shape[1]), dtype=np.float32)
        vector[rows[has]] = values[has]
        present = np.zeros(n, dtype=bool)
        present[rows] = has
    if "categorical" in items.column_names:
        values, _ = _fixed_lists(items.column("categorical"), np.int64, -1)
        codes = np.full((n, values.shape[1]), -1, dtype=np.int64)
        codes[rows] = values
    topics = np.full((n, 1), -1, dtype=np.int64)
    if "topics" in items.column_names:
        topics = topics_matrix(items, n)
    return ItemFeatures(
        n_items=n,
        vector=None if vector is None else torch.from_numpy(vector),
        vector_present=None if present is None else torch.from_numpy(present),
        codes=None if codes is None else torch.from_numpy(codes),
        topics=torch.from_numpy(topics),
    )


def _fixed_lists(
    column: pa.ChunkedArray, dtype: type, fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-size list column -> ``[R, W]`` values (nulls as ``fill``) and ``[R]`` row present."""
    array = column.combine_chunks()
    width = array.type.list_size
    r = len(array)
    has = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    flat = array.flatten().fill_null(fill).to_numpy(zero_copy_only=False).astype(dtype)
    out = np.full((r, width), fill, dtype=dtype)
    if flat.size == r * width:  # null rows kept their (meaningless) slots
        out[has] = flat.reshape(r, width)[has]
    else:  # null rows dropped by flatten
        out[has] = flat.reshape(-1, width)
    return out, has
