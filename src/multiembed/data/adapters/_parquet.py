"""Reading Parquet sources in batches with provenance, and normalising raw column types.

Private to `multiembed.data.adapters`. Parquet cells are already typed, so the
only structural checks are file-level: a missing or unreadable file, a missing
column or a file without rows raise `InputFileError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from multiembed.data.adapters._common import drop_topics, split_topics
from multiembed.errors import InputFileError

_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def parquet_files(source: Path) -> list[Path]:
    """`source` itself, or the `*.parquet` shards of directory `source` in name order."""
    if not source.exists():
        raise InputFileError(source, "file not found", expected="a Parquet file or directory")
    if source.is_dir():
        shards = sorted(p for p in source.glob("*.parquet") if p.is_file())
        if not shards:
            raise InputFileError(source, "holds no *.parquet file", expected="Parquet shards")
        return shards
    return [source]


def read_parquet(source: Path, columns: Sequence[str], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Streams `columns` of a Parquet file (or directory of shards) with provenance.

    Yields:
        RecordBatches with the requested columns (types as stored) plus `_file`
        (string) and `_row` (int64, 0-based record index within the file).

    Raises:
        InputFileError: a file is missing, not Parquet, lacks a column, or the
            source holds no rows at all.
    """
    total = 0
    for path in parquet_files(source):
        try:
            reader = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise InputFileError(path, f"is not a readable Parquet file ({err})") from None
        names = reader.schema_arrow.names
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputFileError(
                path,
                f"missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'nothing'})",
                expected=f"Parquet columns {', '.join(columns)}",
            )
        start = 0
        for batch in reader.iter_batches(
            batch_size=batch_rows, columns=list(dict.fromkeys(columns))
        ):
            n = batch.num_rows
            if n == 0:
                continue
            arrays = [batch.column(c) for c in columns]
            arrays.append(pa.array([str(path)] * n, pa.string()))
            arrays.append(pa.array(range(start, start + n), pa.int64()))
            start += n
            yield pa.RecordBatch.from_arrays(arrays, names=[*columns, "_file", "_row"])
        total += start
    if total == 0:
        raise InputFileError(source, "has no rows", expected="at least one row")


def _decoded(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def as_raw_key(arr: pa.Array) -> pa.Array:
    """Ids and other keys as validation reads them: int64, float64 (checked there) or string."""
    arr = _decoded(arr)
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.int64())
    if pa.types.is_floating(arr.type):
        return arr.cast(pa.float64())
    return arr.cast(pa.string())


def as_raw_ts(arr: pa.Array) -> pa.Array:
    """Timestamps as seconds (int64) from Arrow timestamps and dates; numbers and text as is.

    >>> import datetime as dt
    >>> as_raw_ts(pa.array([dt.datetime(1970, 1, 2, 0, 0, 1)], pa.timestamp("ms"))).to_pylist()
    [86401]
    """
    arr = _decoded(arr)
    if pa.types.is_timestamp(arr.type):
        units = _UNITS_PER_SECOND[arr.type.unit]
        ticks = arr.cast(pa.timestamp(arr.type.unit)).cast(pa.int64())  # drops the time zone
        # Floor division, so instants before a whole second stay in that second.
        return pc.divide(pc.subtract(ticks, pc.if_else(pc.less(ticks, 0), units - 1, 0)), units)
    if pa.types.is_date(arr.type):
        return arr.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()) * 86_400
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.int64())
    if pa.types.is_floating(arr.type):
        return arr.cast(pa.float64())
    return arr.cast(pa.string())


def as_topic_lists(arr: pa.Array, separator: str) -> pa.Array:
    """Topic lists as list<string>: a list column is cast, a text column split on `separator`.

    >>> as_topic_lists(pa.array([[1, 2], None, [3, None]]), "|").to_pylist()
    [['1', '2'], [], ['3']]
    >>> as_topic_lists(pa.array(["a|b", None]), "|").to_pylist()
    [['a', 'b'], []]
    """
    arr = _decoded(arr)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return drop_topics(arr, _present)
    return split_topics(arr, separator)


def _present(flat: pa.Array) -> pa.Array:
    return pc.and_(pc.is_valid(flat), pc.not_equal(pc.utf8_length(flat), 0))
