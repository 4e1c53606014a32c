"""Pieces shared by the dataset adapters: raw batch builders and derived item tables.

Private to `multiembed.data.adapters`. Every builder returns batches in the raw
layout of `base.RawDataset` (canonical column names, raw values, `_file` and
`_row` provenance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from multiembed.data.quarantine import Quarantine

#: Accumulated (item, topic) pairs are re-reduced once they exceed this many
#: times the batch size, so deriving items from a long log stays in bounded memory.
_COMPACT_FACTOR = 4

_TOPICS_TYPE = pa.list_(pa.string())
_ROW_BITS = 40  # rows per file below 2**40; file number in the bits above


def engagement_batch(
    *,
    user_id: pa.Array,
    item_id: pa.Array,
    ts: pa.Array,
    action: pa.Array,
    file: pa.Array,
    row: pa.Array,
    source_topic: pa.Array | None = None,
) -> pa.RecordBatch:
    """A raw `engagements` batch; `source_topic=None` means none was logged (all null)."""
    if source_topic is None:
        source_topic = pa.nulls(len(user_id), pa.string())
    return pa.RecordBatch.from_arrays(
        [user_id, item_id, ts, action, source_topic, file, row],
        names=["user_id", "item_id", "ts", "action", "source_topic", "_file", "_row"],
    )


def items_batch(
    *,
    item_id: pa.Array,
    topics: pa.Array,
    file: pa.Array,
    row: pa.Array,
    features: Mapping[str, pa.Array] | None = None,
) -> pa.RecordBatch:
    """A raw `items` batch: ids and lists of raw topic keys.

    `features` adds the optional columns `vector`, `categorical` and `title`.
    """
    extra = dict(features or {})
    return pa.RecordBatch.from_arrays(
        [item_id, topics.cast(_TOPICS_TYPE), *extra.values(), file, row],
        names=["item_id", "topics", *extra, "_file", "_row"],
    )


def user_topics_batch(
    *,
    user_id: pa.Array,
    topic: pa.Array,
    followed_at: pa.Array,
    file: pa.Array,
    row: pa.Array,
    unfollowed_at: pa.Array | None = None,
) -> pa.RecordBatch:
    """A raw `user_topics` batch; `unfollowed_at=None`: nobody unfollows (all null)."""
    if unfollowed_at is None:
        unfollowed_at = pa.nulls(len(user_id), pa.string())
    return pa.RecordBatch.from_arrays(
        [user_id, topic, followed_at, unfollowed_at, file, row],
        names=["user_id", "topic", "followed_at", "unfollowed_at", "_file", "_row"],
    )


def split_topics(values: pa.Array, separator: str) -> pa.Array:
    """Splits `separator`-joined topic strings into lists of trimmed, non-empty topics.

    >>> split_topics(pa.array(["a|b", "", None, "|c |"]), "|").to_pylist()
    [['a', 'b'], [], [], ['c']]
    """
    parts = pc.split_pattern(pc.fill_null(values.cast(pa.string()), ""), separator)
    return drop_topics(parts, nonempty, transform=pc.utf8_trim_whitespace)


def nonempty(texts: pa.Array) -> pa.Array:
    """True for each non-empty string (null for null)."""
    return pc.not_equal(pc.utf8_length(texts), 0)


def singletons(values: pa.Array) -> pa.Array:
    """One-element topic lists, one per value.

    >>> singletons(pa.array(["a", "b"])).to_pylist()
    [['a'], ['b']]
    """
    offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values.cast(pa.string()))


def drop_topics(
    lists: pa.Array,
    keep: Callable[[pa.Array], pa.Array],
    *,
    transform: Callable[[pa.Array], pa.Array] | None = None,
) -> pa.Array:
    """Keeps the list elements for which `keep(flat_values)` is true (null lists become []).

    `transform`, if given, rewrites the flat values first (e.g. trims them).
    """
    lists = pc.fill_null(lists.cast(_TOPICS_TYPE), pa.scalar([], _TOPICS_TYPE))
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat = pc.list_flatten(lists)
    if transform is not None:
        flat = transform(flat)
    mask = pc.fill_null(keep(flat), False)
    # New offsets: how many kept elements precede each list boundary.
    kept_before = np.concatenate([[0], np.cumsum(mask.to_numpy(zero_copy_only=False))])
    bounds = np.asarray(lists.offsets, dtype=np.int64)
    offsets = kept_before[bounds - bounds[0]].astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.filter(mask).cast(pa.string()))


class DerivedItems:
    """Builds an item table from (item, topics) rows of a log: one row per distinct item.

    An item's topics are the distinct topics seen with it in any row; its
    provenance is the first row it appears on (files in the order first added).
    Memory is bounded by the number of distinct (item, topic) pairs, not by the
    length of the log.

    >>> d = DerivedItems(batch_rows=10)
    >>> d.add(pa.array(["7", "8", "7"]), pa.array([["a"], [], ["b"]]), pa.array([2, 3, 4]), "f.csv")
    >>> next(d.batches()).to_pylist()  # doctest: +NORMALIZE_WHITESPACE
    [{'item_id': '7', 'topics': ['a', 'b'], '_file': 'f.csv', '_row': 2},
     {'item_id': '8', 'topics': [], '_file': 'f.csv', '_row': 3}]
    """

    def __init__(self, *, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self._files: dict[str, int] = {}
        self._parts: list[pa.Table] = []
        self._pending = 0

    def add(self, item_id: pa.Array, topics: pa.Array, rows: pa.Array, file: str) -> None:
        """Adds rows of `file`: item ids, their topic lists and their source rows."""
        file_no = self._files.setdefault(file, len(self._files))
        # One sortable int64 per (file, row): the smallest is the first appearance.
        where = pc.add(pc.cast(rows, pa.int64()), file_no << _ROW_BITS)
        topics = topics.cast(_TOPICS_TYPE)
        parents = pc.list_parent_indices(topics)
        paired = pa.table(
            {
                "item_id": pc.take(item_id, parents),
                "topic": pc.list_flatten(topics),
                "_where": pc.take(where, parents),
            }
        )
        # A null-topic row per input row keeps items that have no topic at all.
        bare = pa.table(
            {"item_id": item_id, "topic": pa.nulls(len(item_id), pa.string()), "_where": where}
        )
        self._parts.append(_reduce_pairs(pa.concat_tables([paired, bare])))
        self._pending += self._parts[-1].num_rows
        if self._pending > _COMPACT_FACTOR * self.batch_rows and len(self._parts) > 1:
            self._parts = [_reduce_pairs(pa.concat_tables(self._parts))]
            self._pending = self._parts[0].num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Yields the derived item rows in order of first appearance."""
        if not self._parts:
            return
        pairs = _reduce_pairs(pa.concat_tables(self._parts))
        items = pairs.group_by("item_id", use_threads=False).aggregate(
            [("topic", "distinct", pc.CountOptions(mode="only_valid")), ("_where", "min")]
        )
        items = items.sort_by("_where_min")
        names = pa.array(list(self._files), pa.string())
        for batch in items.to_batches(max_chunksize=self.batch_rows):
            where = batch.column("_where_min")
            yield items_batch(
                item_id=batch.column("item_id"),
                topics=batch.column("topic_distinct"),
                file=names.take(pc.shift_right(where, _ROW_BITS)),
                row=pc.bit_wise_and(where, (1 << _ROW_BITS) - 1),
            )


def _reduce_pairs(table: pa.Table) -> pa.Table:
    reduced = table.group_by(["item_id", "topic"], use_threads=False).aggregate([("_where", "min")])
    return reduced.rename_columns(["item_id", "topic", "_where"])


def map_values(values: pa.Array, mapping: Mapping[str, str]) -> pa.Array:
    """Maps string values through `mapping`; values not in it pass through unchanged.

    >>> raw = pa.array(["pv", "buy", "zap", None])
    >>> map_values(raw, {"pv": "view", "buy": "purchase"}).to_pylist()
    ['view', 'purchase', 'zap', None]
    """
    if not mapping:
        return values
    keys = pa.array(list(mapping), pa.string())
    targets = pa.array(list(mapping.values()), pa.string())
    return pc.coalesce(targets.take(pc.index_in(values, value_set=keys)), values)


def probe(open_stream: Callable[[Quarantine], Iterator[pa.RecordBatch]]) -> None:
    """Opens a stream and reads its first batch, so that file-level defects fail early.

    The stream gets a throwaway quarantine: nothing it reads here is counted.
    """
    stream = open_stream(Quarantine())
    try:
        next(stream, None)
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def constant(value: str, n: int) -> pa.Array:
    """A string array repeating `value` (file names, fixed actions)."""
    return pa.array([value] * n, pa.string())
