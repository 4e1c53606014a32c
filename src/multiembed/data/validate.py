"""Row validation of raw tables: every cell parsed, every bad row quarantined.

The three tables are validated in dependency order (items, engagements,
user_topics). Engagements stream through a staging Parquet file so that memory
stays bounded by the batch size plus a few bytes per row for the cross-row
rules (time span, duplicates).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from multiembed.data._parse import (
    RESERVED_ID,
    Bad,
    _mask,
    _nulls,
    parse_ids,
    parse_timestamps,
)
from multiembed.data.quarantine import Quarantine
from multiembed.data.schema import ACTIONS

_ACTION_SET = pa.array(ACTIONS, pa.string())

#: A raw topic equal to the service's padding value: the service would read it as "no topic".
RESERVED_TOPIC_RULE = f"topic {RESERVED_ID} is reserved (the service pads with it)"


def reserved_topics(topics: pa.Array) -> np.ndarray:
    """True for rows whose topic key (or, for lists, any topic in the list) is -1.

    Keys are integers or text; a vocabulary of mixed keys holds them all as
    text, and the service reads an integer topic as its text, so "-1" is -1.

    >>> reserved_topics(pa.array(["a", "-1", None, " -1"])).tolist()
    [False, True, False, False]
    >>> reserved_topics(pa.array([[1, -1], None, [2]])).tolist()
    [True, False, False]
    """
    if isinstance(topics, pa.ChunkedArray):
        topics = topics.combine_chunks()
    if pa.types.is_list(topics.type) or pa.types.is_large_list(topics.type):
        hit = _is_reserved(pc.list_flatten(topics))
        rows = np.zeros(len(topics), dtype=bool)
        rows[np.asarray(pc.list_parent_indices(topics).to_numpy(), dtype=np.int64)[hit]] = True
        return rows
    return _is_reserved(topics)


def _is_reserved(keys: pa.Array) -> np.ndarray:
    if pa.types.is_null(keys.type):
        return np.zeros(len(keys), dtype=bool)
    if pa.types.is_integer(keys.type):
        same = pc.equal(keys, RESERVED_ID)
    else:
        same = pc.equal(keys.cast(pa.string()), str(RESERVED_ID))
    return _mask(same.fill_null(False))


class _Rows:
    """The rows of one batch still alive, and the quarantine their rejects go to.

    Validation counts the batch's rows as read (`count`); a reader that rejects
    rows before validation sees them passes `unread=True` (each reject counts
    itself), a later pass over counted rows `count=False`.
    """

    def __init__(
        self,
        quarantine: Quarantine,
        table: str,
        batch: pa.RecordBatch,
        *,
        count: bool = True,
        unread: bool = False,
    ) -> None:
        if count and not unread:
            quarantine.count_in(table, batch.num_rows)
        self.quarantine, self.table, self.batch, self.unread = quarantine, table, batch, unread
        self.alive = np.ones(batch.num_rows, dtype=bool)

    def reject(self, column: str, bad: Bad, values: pa.Array | None = None) -> None:
        """Quarantines the alive rows that break a rule of `bad` in `column`.

        The quarantine shows each row's value in `column`, or in `values`.
        """
        values = self.batch.column(column) if values is None else values
        for rule, mask in bad.items():
            hit = mask & self.alive
            if hit.any():
                idx = pa.array(np.flatnonzero(hit))
                self.quarantine.add(
                    self.table,
                    self.batch.column("_file").take(idx),
                    self.batch.column("_row").take(idx),
                    column,
                    rule,
                    values.take(idx),
                    unread=self.unread,
                )
                self.alive = self.alive & ~hit

    def ids(self, column: str, integer: bool) -> pa.Array:
        values, bad = parse_ids(self.batch.column(column), integer=integer)
        self.reject(column, bad)
        return values

    def times(self, column: str) -> np.ndarray:
        values, bad = parse_timestamps(self.batch.column(column))
        self.reject(column, bad)
        return values


def _column_or_nulls(batch: pa.RecordBatch, name: str, kind: pa.DataType) -> pa.Array:
    """Column `name` of `batch`, or nulls of type `kind` when the batch has no such column."""
    if name in batch.schema.names:
        return batch.column(name)
    return pa.nulls(batch.num_rows, kind)


# ---------------------------------------------------------------- items


def validate_items(
    batches: Iterator[pa.RecordBatch],
    *,
    quarantine: Quarantine,
    vector_dim: int | None,
    n_categorical: int,
    integer_ids: bool,
) -> pa.Table:
    """Validates raw item rows; returns those that pass, with raw ids and raw topic keys.

    Columns: item_id, topics, [vector], [categorical], [title], valid, _file, _row.

    Rules: id parses ("not an integer id", "missing value"); no topic is -1
    (`RESERVED_TOPIC_RULE`); a repeated id ("duplicate item_id", the first row
    wins); a vector of the wrong length or with NaN/inf. A null vector or
    categorical value is not a defect: the item is kept and marked invalid
    (missing features, paper Eq. 6). An optional `title` column is carried
    through as text.
    """
    kept: list[pa.Table] = []
    for batch in batches:
        rows = _Rows(quarantine, "items", batch)
        ids = rows.ids("item_id", integer_ids)
        valid = np.ones(batch.num_rows, dtype=bool)
        topics = _column_or_nulls(batch, "topics", pa.list_(pa.string()))
        rows.reject("topics", {RESERVED_TOPIC_RULE: reserved_topics(topics)})
        columns: dict[str, pa.Array] = {
            "item_id": ids,
            "topics": topics.fill_null(pa.scalar([], topics.type)),
        }
        # A missing feature column reads as all null: no rule broken, every item invalid.
        if vector_dim is not None:
            vec = _column_or_nulls(batch, "vector", pa.list_(pa.float32()))
            vec_bad, present, columns["vector"] = _check_vectors(vec, vector_dim)
            rows.reject("vector", vec_bad, vec)
            valid &= present
        if n_categorical:
            cat = _column_or_nulls(batch, "categorical", pa.list_(pa.string()))
            cat_bad, cat_present = _check_categorical(cat, n_categorical)
            rows.reject("categorical", cat_bad, cat)
            valid &= cat_present
            columns["categorical"] = cat
        if "title" in batch.schema.names:
            columns["title"] = batch.column("title").cast(pa.string())
        columns["valid"] = pa.array(valid)
        columns["_file"] = batch.column("_file")
        columns["_row"] = batch.column("_row")
        kept.append(pa.table(columns).filter(pa.array(rows.alive)))
    if not kept:
        return pa.table({"item_id": pa.array([], pa.int64())})
    table = pa.concat_tables(kept, promote_options="permissive")
    return _drop_duplicates(table, ["item_id"], "items", quarantine)


def _check_vectors(vec: pa.Array, dim: int) -> tuple[Bad, np.ndarray, pa.Array]:
    """Rules for dense vectors; returns (bad, present mask, vectors as list<float32>)."""
    if isinstance(vec, pa.ChunkedArray):
        vec = vec.combine_chunks()
    n = len(vec)
    if pa.types.is_null(vec.type):
        return {}, np.zeros(n, dtype=bool), pa.nulls(n, pa.list_(pa.float32()))
    if pa.types.is_fixed_size_list(vec.type):
        vec = vec.cast(pa.list_(vec.type.value_type))
    vec = vec.cast(pa.list_(pa.float32()))
    present = _nulls(vec) == False  # noqa: E712
    lengths = np.asarray(pc.list_value_length(vec).fill_null(dim).to_numpy(zero_copy_only=False))
    wrong_len = present & (lengths != dim)
    flat = np.asarray(pc.list_flatten(vec).to_numpy(zero_copy_only=False), dtype=np.float32)
    finite = np.isfinite(flat)
    row_of = np.repeat(np.arange(n), np.where(present, lengths, 0))
    nonfinite_rows = np.zeros(n, dtype=bool)
    nonfinite_rows[row_of[~finite]] = True
    return (
        {
            f"wrong vector length (expected {dim})": wrong_len,
            "NaN or inf in vector": nonfinite_rows & ~wrong_len,
        },
        present,
        vec,
    )


def _check_categorical(cat: pa.Array, n: int) -> tuple[Bad, np.ndarray]:
    if isinstance(cat, pa.ChunkedArray):
        cat = cat.combine_chunks()
    rows = len(cat)
    if pa.types.is_null(cat.type):
        return {}, np.zeros(rows, dtype=bool)
    present = ~_nulls(cat)
    lengths = np.asarray(pc.list_value_length(cat).fill_null(n).to_numpy(zero_copy_only=False))
    wrong = present & (lengths != n)
    flat_null = _nulls(pc.list_flatten(cat))
    row_of = np.repeat(np.arange(rows), np.where(present, lengths, 0))
    any_null = np.zeros(rows, dtype=bool)
    any_null[row_of[flat_null]] = True
    return {f"wrong number of categorical fields (expected {n})": wrong}, present & ~any_null


def _drop_duplicates(
    table: pa.Table, keys: list[str], name: str, quarantine: Quarantine
) -> pa.Table:
    """Quarantines rows whose `keys` repeat an earlier row (the first occurrence is kept)."""
    dup = first_occurrence(table, keys) == False  # noqa: E712
    if not dup.any():
        return table
    rows = table.filter(pa.array(dup))
    quarantine.add(
        name,
        rows.column("_file"),
        rows.column("_row"),
        keys[0],
        f"duplicate {'+'.join(keys)}",
        rows.column(keys[0]).cast(pa.string()),
    )
    return table.filter(pa.array(~dup))


def first_occurrence(table: pa.Table, keys: list[str]) -> np.ndarray:
    """Boolean mask: True for the first row of each distinct combination of `keys`.

    >>> first_occurrence(pa.table({"a": [1, 2, 1], "b": [5, 5, 5]}), ["a", "b"]).tolist()
    [True, True, False]
    """
    n = table.num_rows
    indexed = table.select(keys).append_column("_i", pa.array(np.arange(n, dtype=np.int64)))
    firsts = indexed.group_by(keys, use_threads=False).aggregate([("_i", "min")])
    keep = np.zeros(n, dtype=bool)
    keep[np.asarray(firsts.column("_i_min").to_numpy(), dtype=np.int64)] = True
    return keep


# ---------------------------------------------------------------- engagements


def _raw_key(arr: pa.Array) -> pa.Array:
    """Raw keys (ids, topics) normalised to int64 or string so batches share one type."""
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.int64())
    return arr.cast(pa.string())


def stage_engagements(
    batches: Iterator[pa.RecordBatch],
    *,
    quarantine: Quarantine,
    item_ids: pa.Array,
    integer_ids: bool,
    staging_path: Path,
) -> int:
    """Applies the per-row rules to raw engagements and writes survivors to `staging_path`.

    Rules: user and item ids parse; the timestamp is a non-negative number or
    date; the action is a known kind; the item is in the (validated) item table;
    the logged topic is not -1 (`RESERVED_TOPIC_RULE`; an empty one is null).
    Returns the number of rows staged.
    """
    writer: pq.ParquetWriter | None = None
    staged = 0
    try:
        for batch in batches:
            rows = _Rows(quarantine, "engagements", batch)
            users = rows.ids("user_id", integer_ids)
            items = rows.ids("item_id", integer_ids)
            ts = rows.times("ts")
            action = batch.column("action").cast(pa.string())
            known = _mask(pc.is_in(action, value_set=_ACTION_SET))
            rows.reject("action", {"unknown action kind": ~known})
            in_items = _mask(pc.is_in(items.cast(item_ids.type), value_set=item_ids))
            rows.reject("item_id", {"item_id not in the item table": ~in_items})
            if "source_topic" in batch.schema.names:
                topic = _raw_key(batch.column("source_topic"))
                if pa.types.is_string(topic.type):
                    empty = pc.equal(pc.utf8_length(topic), 0)
                    topic = pc.if_else(empty, pa.scalar(None, pa.string()), topic)
                rows.reject("source_topic", {RESERVED_TOPIC_RULE: reserved_topics(topic)})
            else:
                topic = pa.nulls(batch.num_rows, pa.int64())
            out = pa.table(
                {
                    "user_id": _raw_key(users),
                    "item_id": _raw_key(items),
                    "ts": pa.array(ts),
                    "action": action,
                    "source_topic": topic,
                    "_file": batch.column("_file").cast(pa.string()),
                    "_row": batch.column("_row").cast(pa.int64()),
                }
            ).filter(pa.array(rows.alive))
            if writer is None:
                writer = pq.ParquetWriter(staging_path, out.schema)
            elif out.schema != writer.schema:
                out = out.cast(writer.schema)
            writer.write_table(out)
            staged += out.num_rows
    finally:
        if writer is not None:
            writer.close()
    return staged


def row_hashes(columns: list[np.ndarray], seed: int) -> np.ndarray:
    """A 64-bit mixing hash of each row of int64 columns (splitmix64 finaliser).

    Two hashes with different seeds make accidental equality of distinct rows
    astronomically unlikely (about n^2 / 2^129).

    >>> a = np.array([1, 2, 1]); b = np.array([5, 5, 5])
    >>> h = row_hashes([a, b], seed=1)
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    with np.errstate(over="ignore"):
        h = np.full(len(columns[0]), np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
        for col in columns:
            x = h ^ col.astype(np.uint64)
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = x ^ (x >> np.uint64(31))
    return h


def duplicate_rows(h1: np.ndarray, h2: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """True for eligible rows equal (by both hashes) to an earlier eligible row.

    `h2` may be a narrower hash (e.g. uint32) than `h1`; together they decide.

    >>> duplicate_rows(np.array([1, 2, 1, 1]), np.array([7, 7, 7, 7]),
    ...                np.array([True, True, False, True])).tolist()
    [False, False, False, True]
    """
    dup = np.zeros(len(h1), dtype=bool)
    if len(h1) < 2:
        return dup
    # One sort of the primary hash finds the few rows that share it; the exact
    # rule (both hashes, eligibility, first occurrence wins) runs on those only,
    # so memory stays at a few bytes per row.
    order = np.argsort(h1, kind="stable")
    sorted_h1 = h1[order]
    same = sorted_h1[1:] == sorted_h1[:-1]
    del sorted_h1
    in_run = np.zeros(len(h1), dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    cand = order[in_run]
    del order, in_run
    cand = cand[eligible[cand]]
    cand = cand[np.lexsort((cand, h2[cand], h1[cand]))]
    repeat = (h1[cand][1:] == h1[cand][:-1]) & (h2[cand][1:] == h2[cand][:-1])
    dup[cand[1:][repeat]] = True
    return dup


# ---------------------------------------------------------------- user topics


def validate_user_topics(
    batches: Iterator[pa.RecordBatch], *, quarantine: Quarantine, integer_ids: bool
) -> pa.Table:
    """Validates follow events: ids, topic (not -1), times, unfollow after follow, duplicates."""
    table_name = "user_topics"
    kept: list[pa.Table] = []
    for batch in batches:
        rows = _Rows(quarantine, table_name, batch)
        users = rows.ids("user_id", integer_ids)
        topic = _raw_key(batch.column("topic"))
        rows.reject(
            "topic", {"missing value": _nulls(topic), RESERVED_TOPIC_RULE: reserved_topics(topic)}
        )
        followed = rows.times("followed_at")
        unf_raw = _column_or_nulls(batch, "unfollowed_at", pa.int64())
        unf_null = _nulls(unf_raw)
        unfollowed, bad = parse_timestamps(unf_raw)
        bad.pop("missing value")
        bad["unfollowed before followed"] = ~unf_null & (unfollowed < followed)
        rows.reject("unfollowed_at", bad)
        kept.append(
            pa.table(
                {
                    "user_id": _raw_key(users),
                    "topic": topic,
                    "followed_at": pa.array(followed),
                    "unfollowed_at": pa.array(unfollowed, mask=unf_null),
                    "_file": batch.column("_file").cast(pa.string()),
                    "_row": batch.column("_row").cast(pa.int64()),
                }
            ).filter(pa.array(rows.alive))
        )
    if not kept:
        return pa.table(
            {
                "user_id": pa.array([], pa.int64()),
                "topic": pa.array([], pa.string()),
                "followed_at": pa.array([], pa.int64()),
                "unfollowed_at": pa.array([], pa.int64()),
                "_file": pa.array([], pa.string()),
                "_row": pa.array([], pa.int64()),
            }
        )
    table = pa.concat_tables(kept, promote_options="permissive")
    return _drop_duplicates(table, ["user_id", "topic", "followed_at"], table_name, quarantine)
