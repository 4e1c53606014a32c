"""Contiguous id vocabularies: raw ids of a source <-> 0..n-1 used everywhere else.

Saved next to the canonical tables (`vocab/users.parquet`, ...) so that runs can
map their outputs back to the raw ids of the source.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

_RAW_TYPE_KEY = b"multiembed.raw_type"


class Vocab:
    """Sorted unique raw keys; a key's position is its contiguous id.

    >>> v = Vocab.from_arrays([pa.array([30, 10, 30, 20])])
    >>> v.encode(pa.array([20, 30, 99])).tolist()
    [1, 2, -1]
    >>> v.decode(np.array([0, 2])).to_pylist()
    [10, 30]
    """

    def __init__(self, raw: pa.Array) -> None:
        self.raw = raw

    @classmethod
    def from_arrays(cls, arrays: Iterable[pa.Array | pa.ChunkedArray]) -> Vocab:
        uniques = [pc.unique(a).drop_null() for a in arrays if len(a)]
        if not uniques:
            return cls(pa.array([], pa.int64()))
        if len({u.type for u in uniques}) > 1:
            uniques = [u.cast(pa.string()) for u in uniques]
        merged = pc.unique(pa.chunked_array(uniques).combine_chunks())
        return cls(merged.take(pc.sort_indices(merged)))

    def __len__(self) -> int:
        return len(self.raw)

    def encode(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Contiguous ids of `values` as int64; -1 for keys not in the vocabulary."""
        if values.type != self.raw.type:
            values = values.cast(self.raw.type)
        idx = pc.index_in(values, value_set=self.raw)
        return np.asarray(idx.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)

    def decode(self, ids: np.ndarray) -> pa.Array:
        """Raw keys of contiguous ids."""
        return self.raw.take(pa.array(np.asarray(ids, dtype=np.int64)))

    def save(self, path: Path) -> None:
        kind = "int64" if pa.types.is_integer(self.raw.type) else "string"
        table = pa.table(
            {"id": np.arange(len(self.raw), dtype=np.int64), "raw": self.raw.cast(pa.string())}
        )
        table = table.replace_schema_metadata({_RAW_TYPE_KEY: kind.encode()})
        pq.write_table(table, path)

    @classmethod
    def load(cls, path: Path) -> Vocab:
        table = pq.read_table(path)
        raw = table.column("raw").combine_chunks()
        meta = table.schema.metadata or {}
        if meta.get(_RAW_TYPE_KEY) == b"int64":
            raw = raw.cast(pa.int64())
        return cls(raw)
