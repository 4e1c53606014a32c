"""Reading Parquet sources in batches with provenance, and normalising raw column types.

Private to `multiembed.data.adapters`. Parquet cells are already typed, so the
structural checks are file-level and raise `InputFileError` naming the file: a
missing or unreadable file, a damaged page, a missing column, a file without
rows, a column of a type no canonical column can hold (structs, maps, lists of
lists), bytes that are not UTF-8 and unsigned ids beyond the int64 range. A
list column is only accepted for item topics; `as_raw_key` and `as_raw_ts`
refuse one by file and column name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from multiembed.data.adapters._common import drop_topics, nonempty, split_topics
from multiembed.data.text import require_columns
from multiembed.errors import DataError, InputFileError

_UNITS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_INT64_MAX = np.iinfo(np.int64).max
_SINGLE = "one number or text per cell for ids, timestamps, actions and logged topics"
_SCALAR = "numbers or text (or lists of them for item topics)"


class _ListColumn(pa.ExtensionType):
    """A list column read from a Parquet file, tagged with the file and the column's name.

    Only item topics may be a list; the tag lets the converters of the other
    columns refuse one by name (`as_raw_key`, `as_raw_ts`).
    """

    def __init__(self, storage_type: pa.DataType, file: str, column: str) -> None:
        self.file = file
        self.column = column
        super().__init__(storage_type, "multiembed.parquet_list_column")

    def __arrow_ext_serialize__(self) -> bytes:
        return json.dumps([self.file, self.column]).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> _ListColumn:
        file, column = json.loads(serialized)
        return cls(storage_type, file, column)


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
        InputFileError: a file is missing, not Parquet, damaged, lacks a column,
            has a column of a type no canonical column can hold, or the source
            holds no rows at all.
    """
    total = 0
    for path in parquet_files(source):
        try:
            reader = pq.ParquetFile(path)
            names = reader.schema_arrow.names
        except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
            # A damaged footer can name a column in bytes that are not UTF-8.
            raise InputFileError(path, f"is not a readable Parquet file ({err})") from None
        require_columns(path, names, columns, f"Parquet columns {', '.join(columns)}")
        start = 0
        batches = reader.iter_batches(batch_size=batch_rows, columns=list(dict.fromkeys(columns)))
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (pa.ArrowException, OSError) as err:
                raise InputFileError(
                    path, f"is damaged: its records from {start} on cannot be read ({err})"
                ) from None
            n = batch.num_rows
            if n == 0:
                continue
            arrays = [_checked(batch.column(c), path, c, start) for c in columns]
            arrays.append(pa.array([str(path)] * n, pa.string()))
            arrays.append(pa.array(range(start, start + n), pa.int64()))
            start += n
            yield pa.RecordBatch.from_arrays(arrays, names=[*columns, "_file", "_row"])
        total += start
    if total == 0:
        raise InputFileError(source, "has no rows", expected="at least one row")


def _checked(arr: pa.Array, path: Path, column: str, start: int) -> pa.Array:
    """One column of a batch, decoded, with bytes as text and a list tagged by file and column.

    `start` is the file's record index of the batch's first row (for messages).
    """
    arr = _decoded(arr)
    kind = arr.type
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
    if is_list or pa.types.is_fixed_size_list(kind):
        if not _scalar(kind.value_type):
            raise InputFileError(path, f"column {column!r} holds {kind} values", expected=_SCALAR)
        if _is_bytes(kind.value_type):
            arr = _text(arr, pa.list_(pa.string()), path, column)
        return pa.ExtensionArray.from_storage(_ListColumn(arr.type, str(path), column), arr)
    if not _scalar(kind):
        raise InputFileError(path, f"column {column!r} holds {kind} values", expected=_SCALAR)
    if _is_bytes(kind):
        return _text(arr, pa.string(), path, column)
    if pa.types.is_uint64(kind):
        big = np.flatnonzero(arr.fill_null(0).to_numpy(zero_copy_only=False) > _INT64_MAX)
        if big.size:
            raise InputFileError(
                path,
                f"column {column!r}, record {start + int(big[0])}: {arr[int(big[0])]} is beyond "
                "the int64 range of ids and timestamps",
                expected=f"values up to {_INT64_MAX}",
            )
    return arr


def _scalar(kind: pa.DataType) -> bool:
    """A type one canonical cell can come from: it reads as text (what validation parses)."""
    if pa.types.is_nested(kind):
        return False
    try:
        pa.array([], kind).cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return False
    return True


def _is_bytes(kind: pa.DataType) -> bool:
    return (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _text(arr: pa.Array, kind: pa.DataType, path: Path, column: str) -> pa.Array:
    try:
        return arr.cast(kind)
    except pa.ArrowInvalid:
        raise InputFileError(
            path, f"column {column!r} holds bytes that are not UTF-8 text", expected="text"
        ) from None


def _decoded(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary_decode()
    return arr


def _single(arr: pa.Array) -> pa.Array:
    """`arr` decoded; a list column is refused (by file and column when read from Parquet)."""
    if isinstance(arr.type, _ListColumn):
        raise InputFileError(
            arr.type.file,
            f"column {arr.type.column!r} holds lists ({arr.type.storage_type}); "
            "only item topics may be a list",
            expected=_SINGLE,
        )
    arr = _decoded(arr)
    if pa.types.is_nested(arr.type):
        raise DataError(f"a column of {arr.type} values; expected {_SINGLE}")
    return arr


def as_raw_key(arr: pa.Array) -> pa.Array:
    """Ids and other keys as validation reads them: int64, float64 (checked there) or string.

    Raises:
        InputFileError: `arr` is a list column (named by file and column).
    """
    arr = _single(arr)
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.int64())
    if pa.types.is_floating(arr.type):
        return arr.cast(pa.float64())
    return arr.cast(pa.string())


def as_topic_text(arr: pa.Array) -> pa.Array:
    """A topic column as text: whole floats as their integer (3.0 -> "3"), NaN as null.

    Pandas writes a nullable integer column as float64 with NaN for missing, so a
    topic 3 must read as the "3" that item topics hold, and a missing one as none.

    >>> as_topic_text(pa.array([3.0, float("nan"), None, 2.5])).to_pylist()
    ['3', None, None, '2.5']
    """
    arr = as_raw_key(arr)
    if not pa.types.is_floating(arr.type):
        return arr.cast(pa.string())
    return pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.string()), arr.cast(pa.string()))


def as_raw_ts(arr: pa.Array) -> pa.Array:
    """Timestamps as seconds (int64) from Arrow timestamps and dates; numbers and text as is.

    >>> import datetime as dt
    >>> as_raw_ts(pa.array([dt.datetime(1970, 1, 2, 0, 0, 1)], pa.timestamp("ms"))).to_pylist()
    [86401]
    """
    arr = _single(arr)
    if pa.types.is_timestamp(arr.type):
        units = _UNITS_PER_SECOND[arr.type.unit]
        ticks = arr.cast(pa.timestamp(arr.type.unit)).cast(pa.int64())  # drops the time zone
        # Floor division, so instants before a whole second stay in that second.
        return pc.divide(pc.subtract(ticks, pc.if_else(pc.less(ticks, 0), units - 1, 0)), units)
    if pa.types.is_date(arr.type):
        return arr.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()) * 86_400
    return as_raw_key(arr)


def as_topic_lists(arr: pa.Array, separator: str) -> pa.Array:
    """Topic lists as list<string>: a list column is cast, a text column split on `separator`.

    >>> as_topic_lists(pa.array([[1, 2], None, [3, None]]), "|").to_pylist()
    [['1', '2'], [], ['3']]
    >>> as_topic_lists(pa.array(["a|b", None]), "|").to_pylist()
    [['a', 'b'], []]
    """
    if isinstance(arr.type, _ListColumn):
        arr = arr.storage
    arr = _decoded(arr)
    if pa.types.is_fixed_size_list(arr.type):
        arr = arr.cast(pa.list_(arr.type.value_type))
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        return drop_topics(arr, nonempty)
    return split_topics(arr, separator)
