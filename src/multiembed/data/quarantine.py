"""The quarantine: every rejected input row, with where it came from and why.

Nothing is dropped silently. Each input row is either kept or quarantined
with one entry (its first failing rule), so for every table
`rows_in == rows_kept + rows_quarantined`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from multiembed.data.schema import QUARANTINE_SCHEMA


class Quarantine:
    """Collects rejected rows per table and counts rows read.

    >>> q = Quarantine()
    >>> q.count_in("engagements", 3)
    >>> q.add("engagements", "log.csv", [4], "ts", "negative timestamp", ["-5"])
    >>> q.rows_quarantined("engagements"), q.rows_in("engagements")
    (1, 3)
    """

    def __init__(self) -> None:
        self._batches: list[pa.RecordBatch] = []
        self._rows_in: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._by_rule: dict[str, Counter[str]] = {}

    def count_in(self, table: str, n: int) -> None:
        """Records that `n` more rows of `table` were read from the source."""
        self._rows_in[table] += n

    def add(
        self,
        table: str,
        source_file: str | Sequence[str] | pa.Array,
        rows: Sequence[int] | np.ndarray | pa.Array,
        column: str,
        rule: str,
        values: Sequence[object] | pa.Array | np.ndarray,
        *,
        unread: bool = False,
    ) -> None:
        """Quarantines rows (one entry each) that broke `rule` in `column`.

        Validation counts the rows it receives; a reader or adapter that rejects
        a row before it reaches validation passes `unread=True` so the row is
        counted as read here instead.
        """
        n = len(rows)
        if n == 0:
            return
        if unread:
            self._rows_in[table] += n
        if isinstance(source_file, str):
            source_file = [source_file] * n
        self._batches.append(
            pa.RecordBatch.from_arrays(
                [
                    pa.array([table] * n, pa.string()),
                    pa.array(source_file, pa.string()),
                    pa.array(np.asarray(rows, dtype=np.int64)),
                    pa.array([column] * n, pa.string()),
                    pa.array([rule] * n, pa.string()),
                    _as_strings(values),
                ],
                schema=QUARANTINE_SCHEMA,
            )
        )
        self._rejected[table] += n
        self._by_rule.setdefault(table, Counter())[f"{column}: {rule}"] += n

    def rows_in(self, table: str) -> int:
        return self._rows_in[table]

    def rows_quarantined(self, table: str) -> int:
        return self._rejected[table]

    def by_rule(self, table: str) -> dict[str, int]:
        return dict(self._by_rule.get(table, Counter()).most_common())

    def to_table(self) -> pa.Table:
        return pa.Table.from_batches(self._batches, schema=QUARANTINE_SCHEMA)

    def write(self, path: Path) -> None:
        pq.write_table(self.to_table(), path)


def _as_strings(values: Sequence[object] | pa.Array | np.ndarray) -> pa.Array:
    """Raw values as strings for the quarantine file (nulls stay null)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return values.cast(pa.string())
        values = values.to_pylist()
    return pa.array([None if v is None else _text(v) for v in values], pa.string())


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)
