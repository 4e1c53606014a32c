"""Raw batches of the side files of a column mapping: item features, topic names, follows.

Private to `multiembed.data.adapters`. The functions take source batches as
the CSV or Parquet reader yields them (text cells, or typed Parquet cells) and
return raw batches in the layout of `base.RawDataset`. A cell that cannot be
used is quarantined here with its file, row, the source column and the rule
(the row counted as read); an empty cell is a missing value, never a defect
of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from multiembed.data._parse import _NUM_RE, _mask
from multiembed.data.adapters._common import items_batch, user_topics_batch
from multiembed.data.adapters._parquet import as_raw_key, as_raw_ts, as_topic_lists, as_topic_text
from multiembed.data.adapters._side_mapping import ItemsMapping, TopicsMapping, UserTopicsMapping
from multiembed.data.quarantine import Quarantine
from multiembed.data.validate import _Rows

NOT_A_NUMBER = "not a number (item vector columns hold numbers; leave a cell empty if missing)"
MISSING_TOPIC = "missing value (every topic row needs its key)"
DUPLICATE_TOPIC = "duplicate topic key (the first row wins)"


def blank_to_null(arr: pa.Array) -> pa.Array:
    """Text with empty (or whitespace-only) cells as nulls; other types unchanged.

    >>> blank_to_null(pa.array(["a", " ", None, ""])).to_pylist()
    ['a', None, None, None]
    """
    if not pa.types.is_string(arr.type):
        return arr
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0)
    return pc.if_else(empty, pa.scalar(None, pa.string()), arr)


def _text(arr: pa.Array) -> pa.Array:
    """A key or label column as trimmed text; empty cells null (numbers as their text)."""
    return blank_to_null(pc.utf8_trim_whitespace(as_topic_text(arr)))


def numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A numeric feature column: float32 values `[N]`, the missing mask and the not-a-number mask.

    >>> v, missing, bad = numbers(pa.array(["1.5", "", None, "x", " -2e1 "]))
    >>> v[[0, 4]].tolist(), missing.tolist(), bad.tolist()
    ([1.5, -20.0], [False, True, True, False, False], [False, False, False, True, False])
    """
    arr = as_raw_key(arr)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        missing = _mask(arr.is_null())
        values = np.asarray(arr.cast(pa.float64()).fill_null(0.0).to_numpy(), dtype=np.float64)
        return values.astype(np.float32), missing, np.zeros(len(arr), dtype=bool)
    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    missing = _mask(pc.fill_null(pc.equal(pc.utf8_length(text), 0), True))
    ok = _mask(pc.match_substring_regex(text, _NUM_RE).fill_null(False))
    values = pc.if_else(pa.array(ok), text, "0").cast(pa.float64())
    return np.asarray(values.to_numpy(), dtype=np.float32), missing, ~ok & ~missing


def _lists(columns: list[pa.Array], present: np.ndarray, value_type: pa.DataType) -> pa.Array:
    """Row-wise lists of one element per column; rows where `present` is False are null."""
    n, width = len(present), len(columns)
    flat = pa.concat_arrays([c.cast(value_type) for c in columns])
    order = (np.arange(n)[:, None] + np.arange(width)[None, :] * n).ravel()  # row-major
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, flat.take(pa.array(order)), mask=pa.array(~present))


def topic_lists(batch: pa.RecordBatch, column: str | None, separator: str) -> pa.Array:
    """The topic lists in `column` of `batch` (`as_topic_lists`); empty lists without one."""
    if column is None:
        return pa.array([[]] * batch.num_rows, pa.list_(pa.string()))
    return as_topic_lists(batch.column(column), separator)


def item_batches(
    batches: Iterator[pa.RecordBatch],
    spec: ItemsMapping,
    *,
    id_column: str,
    topics_column: str | None,
    separator: str,
    quarantine: Quarantine,
) -> Iterator[pa.RecordBatch]:
    """Raw `items` batches of an item file, with `vector`, `categorical` and `title` as mapped.

    A row with a vector cell that is not a number is quarantined (column = the
    source column); an empty vector cell makes the row's vector null, an empty
    categorical cell a null element: the item is kept and marked invalid.
    """
    for batch in batches:
        n = batch.num_rows
        rows = _Rows(quarantine, "items", batch, unread=True)
        features: dict[str, pa.Array] = {}
        if spec.vector:
            values, any_missing = [], np.zeros(n, dtype=bool)
            for column in spec.vector:
                v, missing, bad = numbers(batch.column(column))
                rows.reject(column, {NOT_A_NUMBER: bad})
                values.append(pa.array(v, pa.float32()))
                any_missing |= missing
            features["vector"] = _lists(values, ~any_missing, pa.float32())
        if spec.categorical:
            cats = [_text(batch.column(c)) for c in spec.categorical]
            features["categorical"] = _lists(cats, np.ones(n, dtype=bool), pa.string())
        if spec.title is not None:
            features["title"] = blank_to_null(
                as_raw_key(batch.column(spec.title)).cast(pa.string())
            )
        out = items_batch(
            item_id=as_raw_key(batch.column(id_column)),
            topics=topic_lists(batch, topics_column, separator),
            file=batch.column("_file"),
            row=batch.column("_row"),
            features=features,
        )
        yield out if rows.alive.all() else out.filter(pa.array(rows.alive))


def topic_table(
    batches: Iterator[pa.RecordBatch], spec: TopicsMapping, quarantine: Quarantine
) -> tuple[dict[str, str], dict[str, str]]:
    """Names and parents of the topic keys in a topic file (raw key -> name, key -> parent key).

    Rows are counted in the quarantine's `topics` table: a row without a key or
    name, or repeating an earlier key, is quarantined there.
    """
    names: dict[str, str] = {}
    parents: dict[str, str] = {}
    for batch in batches:
        quarantine.count_in("topics", batch.num_rows)
        keys = _text(batch.column(spec.id)).to_pylist()
        labels = _text(batch.column(spec.name)).to_pylist()
        ups = (
            _text(batch.column(spec.parent)).to_pylist()
            if spec.parent is not None
            else [None] * batch.num_rows
        )
        files = batch.column("_file").to_pylist()
        rows = batch.column("_row").to_pylist()
        raw_keys = as_raw_key(batch.column(spec.id)).to_pylist()
        raw_names = as_raw_key(batch.column(spec.name)).to_pylist()
        for i, (key, label, up) in enumerate(zip(keys, labels, ups, strict=True)):
            problem = None
            if key is None:
                problem = (spec.id, MISSING_TOPIC, raw_keys[i])
            elif label is None:
                problem = (spec.name, "missing value (the topic's name)", raw_names[i])
            elif key in names:
                problem = (spec.id, DUPLICATE_TOPIC, raw_keys[i])
            if problem is not None:
                column, rule, value = problem
                quarantine.add("topics", files[i], [rows[i]], column, rule, [value])
                continue
            names[key] = label
            if up is not None:
                parents[key] = up
    return names, parents


def follow_batches(
    batches: Iterator[pa.RecordBatch], spec: UserTopicsMapping, *, user_column: str
) -> Iterator[pa.RecordBatch]:
    """Raw `user_topics` batches of a follow file (validation parses and quarantines)."""
    for batch in batches:
        followed = (
            pa.array(np.zeros(batch.num_rows, dtype=np.int64))
            if spec.followed_at is None
            else blank_to_null(as_raw_ts(batch.column(spec.followed_at)))
        )
        unfollowed = (
            None
            if spec.unfollowed_at is None
            else blank_to_null(as_raw_ts(batch.column(spec.unfollowed_at)))
        )
        yield user_topics_batch(
            user_id=as_raw_key(batch.column(user_column)),
            topic=_text(batch.column(spec.topic)),
            followed_at=followed,
            unfollowed_at=unfollowed,
            file=batch.column("_file"),
            row=batch.column("_row"),
        )


def item_columns(spec: ItemsMapping, id_column: str, topics_column: str | None) -> list[str]:
    """The columns an item file must hold under `spec`."""
    names = [id_column, topics_column, spec.title, *spec.vector, *spec.categorical]
    return list(dict.fromkeys(c for c in names if c is not None))


def follow_columns(spec: UserTopicsMapping, user_column: str) -> list[str]:
    """The columns a follow file must hold under `spec`."""
    names = [user_column, spec.topic, spec.followed_at, spec.unfollowed_at]
    return list(dict.fromkeys(c for c in names if c is not None))


def topic_columns(spec: TopicsMapping) -> list[str]:
    """The columns a topic file must hold under `spec`."""
    return list(dict.fromkeys(c for c in (spec.id, spec.name, spec.parent) if c is not None))
