"""Any engagement log as CSV/TSV or Parquet, mapped onto the canonical columns.

A `ColumnMapping` names the columns holding the user, item and timestamp, and
optionally the action (with a raw -> canonical map), the logged condition
(`source_topic`) and item topics (`|`-separated in a text cell, or a list
column in Parquet). Without an item file the item table is derived from the
engagement log: one item per distinct id, topics = every topic seen with it.

>>> m = ColumnMapping(user="uid", item="iid", ts="time", action="event",
...                   action_map={"clk": "click", "fav": "save"})
>>> CsvAdapter(m, batch_rows=1000).name
'csv'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from multiembed.data.adapters._common import (
    DerivedItems,
    constant,
    engagement_batch,
    items_batch,
    map_values,
    probe,
    split_topics,
)
from multiembed.data.adapters._mapping import ColumnMapping, read_mapping_file
from multiembed.data.adapters._parquet import (
    as_raw_key,
    as_raw_ts,
    as_topic_lists,
    as_topic_text,
    read_parquet,
)
from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.errors import ConfigError


def _notes(mapping: ColumnMapping, items_file: Path | None) -> tuple[str, ...]:
    notes = [
        f"items read from {items_file}"
        if items_file is not None
        else "item table derived from the engagement log: one item per item id, "
        "topics = every topic seen with it",
        f"action from column {mapping.action!r}"
        if mapping.action
        else f"no action column: every engagement is {mapping.default_action!r}",
    ]
    if mapping.source_topic is None:
        notes.append("no logged condition: source_topic is null")
    notes.append("user_topics is empty (the mapping names no followed topics)")
    return tuple(notes)


class CsvAdapter:
    """Reads an engagement log in delimited text (CSV, TSV, ...) through a `ColumnMapping`.

    Args:
        mapping: where the canonical columns are.
        items_file: optional item file (same delimiter and encoding) with the
            columns `mapping.item` and, if set, `mapping.item_topics`.
        batch_rows: rows per yielded batch.
        name: dataset name for the report.
    """

    def __init__(
        self,
        mapping: ColumnMapping,
        *,
        items_file: Path | None = None,
        batch_rows: int = 1_000_000,
        name: str = "csv",
    ) -> None:
        self.mapping = mapping
        self.items_file = items_file
        self.batch_rows = batch_rows
        self.name = name

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset:
        """Raw tables of the engagement file `source` (and `items_file`).

        Raises:
            InputFileError: a file is missing, empty, not in the encoding, or
                lacks a mapped column.
        """
        probe(lambda q: self._read(source, "engagements", q, self._columns(), 1))
        if self.items_file is not None:
            items_file = self.items_file
            probe(lambda q: self._read(items_file, "items", q, self._item_columns(), 1))
        return RawDataset(
            name=self.name,
            items=lambda: self._items(source, quarantine),
            engagements=lambda: self._engagements(source, quarantine),
            integer_ids=self.mapping.integer_ids,
            notes=_notes(self.mapping, self.items_file),
        )

    def _columns(self) -> list[str]:
        """Engagement columns; item topics come from the item file when there is one."""
        return self.mapping.columns(item_topics=self.items_file is None)

    def _item_columns(self) -> list[str]:
        m = self.mapping
        return [m.item] if m.item_topics is None else [m.item, m.item_topics]

    def _read(
        self, path: Path, table: str, quarantine: Quarantine, columns: Sequence[str], rows: int
    ) -> Iterator[pa.RecordBatch]:
        m = self.mapping
        return read_delimited(
            path,
            table=table,
            quarantine=quarantine,
            columns=columns,
            delimiter=m.delimiter,
            encoding=m.encoding,
            header=m.header if table == "engagements" else None,
            batch_rows=rows,
        )

    def _topics(self, batch: pa.RecordBatch) -> pa.Array:
        m = self.mapping
        if m.item_topics is None:
            return pa.array([[]] * batch.num_rows, pa.list_(pa.string()))
        return split_topics(batch.column(m.item_topics), m.topic_separator)

    def _items(self, source: Path, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        m = self.mapping
        if self.items_file is not None:
            for batch in self._read(
                self.items_file, "items", quarantine, self._item_columns(), self.batch_rows
            ):
                yield items_batch(
                    item_id=batch.column(m.item),
                    topics=self._topics(batch),
                    file=batch.column("_file"),
                    row=batch.column("_row"),
                )
            return
        # A throwaway quarantine: the engagement pass reports the log's structural defects.
        derived = DerivedItems(batch_rows=self.batch_rows)
        for batch in self._read(
            source, "engagements", Quarantine(), self._columns(), self.batch_rows
        ):
            derived.add(
                batch.column(m.item), self._topics(batch), batch.column("_row"), str(source)
            )
        yield from derived.batches()

    def _engagements(self, source: Path, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        m = self.mapping
        for batch in self._read(
            source, "engagements", quarantine, self._columns(), self.batch_rows
        ):
            yield _engagements(m, batch)


class ParquetAdapter:
    """Reads an engagement log in Parquet (a file, or a directory of `*.parquet` shards).

    Batches are read with pyarrow; `_row` is the 0-based record index within
    each file. Integer ids and timestamps keep their types; Arrow timestamps and
    dates become seconds; a list column of item topics is used as is.

    Args:
        mapping: where the canonical columns are (delimiter, encoding and
            header are ignored).
        items_file: optional Parquet item file with `mapping.item` and, if set,
            `mapping.item_topics`.
        batch_rows: rows per yielded batch.
        name: dataset name for the report.
    """

    def __init__(
        self,
        mapping: ColumnMapping,
        *,
        items_file: Path | None = None,
        batch_rows: int = 1_000_000,
        name: str = "parquet",
    ) -> None:
        self.mapping = mapping
        self.items_file = items_file
        self.batch_rows = batch_rows
        self.name = name

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset:
        """Raw tables of the Parquet engagement log `source` (and `items_file`).

        Raises:
            InputFileError: a file is missing, not Parquet, has no rows, or
                lacks a mapped column.
        """
        probe(lambda q: read_parquet(source, self._columns(), batch_rows=1))
        if self.items_file is not None:
            items_file = self.items_file
            probe(lambda q: read_parquet(items_file, self._item_columns(), batch_rows=1))
        return RawDataset(
            name=self.name,
            items=lambda: self._items(source),
            engagements=lambda: self._engagements(source),
            integer_ids=self.mapping.integer_ids,
            notes=_notes(self.mapping, self.items_file),
        )

    def _columns(self) -> list[str]:
        """Engagement columns; item topics come from the item file when there is one."""
        return self.mapping.columns(item_topics=self.items_file is None)

    def _item_columns(self) -> list[str]:
        m = self.mapping
        return [m.item] if m.item_topics is None else [m.item, m.item_topics]

    def _topics(self, batch: pa.RecordBatch) -> pa.Array:
        m = self.mapping
        if m.item_topics is None:
            return pa.array([[]] * batch.num_rows, pa.list_(pa.string()))
        return as_topic_lists(batch.column(m.item_topics), m.topic_separator)

    def _items(self, source: Path) -> Iterator[pa.RecordBatch]:
        m = self.mapping
        if self.items_file is not None:
            for batch in read_parquet(self.items_file, self._item_columns(), self.batch_rows):
                yield items_batch(
                    item_id=as_raw_key(batch.column(m.item)),
                    topics=self._topics(batch),
                    file=batch.column("_file"),
                    row=batch.column("_row"),
                )
            return
        derived = DerivedItems(batch_rows=self.batch_rows)
        for batch in read_parquet(source, self._columns(), self.batch_rows):
            derived.add(
                as_raw_key(batch.column(m.item)),
                self._topics(batch),
                batch.column("_row"),
                batch.column("_file")[0].as_py(),
            )
        yield from derived.batches()

    def _engagements(self, source: Path) -> Iterator[pa.RecordBatch]:
        m = self.mapping
        for batch in read_parquet(source, self._columns(), self.batch_rows):
            yield _engagements(m, batch)


def _engagements(m: ColumnMapping, batch: pa.RecordBatch) -> pa.RecordBatch:
    """The raw engagement batch of one source batch under mapping `m`."""
    if m.action is None:
        action = constant(m.default_action, batch.num_rows)
    else:
        action = map_values(as_raw_key(batch.column(m.action)).cast(pa.string()), m.action_map)
    return engagement_batch(
        user_id=as_raw_key(batch.column(m.user)),
        item_id=as_raw_key(batch.column(m.item)),
        ts=as_raw_ts(batch.column(m.ts)),
        action=action,
        source_topic=(
            None if m.source_topic is None else as_topic_text(batch.column(m.source_topic))
        ),
        file=batch.column("_file"),
        row=batch.column("_row"),
    )


def load_generic_adapter(
    name: str, mapping_file: Path | None, *, batch_rows: int
) -> CsvAdapter | ParquetAdapter:
    """The `csv` or `parquet` adapter configured by a TOML mapping file.

    Raises:
        ConfigError: no mapping file, or one with unknown keys or bad values.
    """
    if name not in ("csv", "parquet"):
        raise ConfigError([f'dataset = "{name}": must be csv or parquet for a column mapping'])
    if mapping_file is None:
        raise ConfigError(
            [f"dataset {name} needs a column mapping file (TOML with user, item, ts, ...)"]
        )
    spec = read_mapping_file(mapping_file)
    cls = CsvAdapter if name == "csv" else ParquetAdapter
    return cls(
        spec.mapping, items_file=spec.items_file, batch_rows=batch_rows, name=spec.name or name
    )


__all__ = ["ColumnMapping", "CsvAdapter", "ParquetAdapter", "load_generic_adapter"]
