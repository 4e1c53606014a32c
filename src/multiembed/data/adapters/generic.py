"""Any engagement log as CSV/TSV or Parquet, mapped onto the canonical columns.

A `ColumnMapping` names the columns holding the user, item and timestamp, and
optionally the action (with a raw -> canonical map), the logged condition
(`source_topic`) and item topics (`|`-separated in a text cell, or a list
column in Parquet). Without an item file the item table is derived from the
engagement log: one item per distinct id, topics = every topic seen with it.
Side files add what the model can use beyond the log: an item file
(`ItemsMapping`: topics, a title, numeric columns that form the item vector,
categorical columns), a topic file (`TopicsMapping`: names, parents) and a
followed-topics file (`UserTopicsMapping`), the explicit interests of
Conditional Retrieval.

>>> m = ColumnMapping(user="uid", item="iid", ts="time", action="event",
...                   action_map={"clk": "click", "fav": "save"})
>>> CsvAdapter(m, batch_rows=1000).name
'csv'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from multiembed.data.adapters._common import (
    DerivedItems,
    constant,
    engagement_batch,
    map_values,
    probe,
)
from multiembed.data.adapters._mapping import ColumnMapping, MappingFile, read_mapping_file
from multiembed.data.adapters._parquet import (
    as_raw_key,
    as_raw_ts,
    as_topic_text,
    read_parquet,
)
from multiembed.data.adapters._side_mapping import ItemsMapping, TopicsMapping, UserTopicsMapping
from multiembed.data.adapters._side_tables import (
    follow_batches,
    follow_columns,
    item_batches,
    item_columns,
    topic_columns,
    topic_lists,
    topic_table,
)
from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.data.validate import _Rows
from multiembed.errors import ConfigError


def _notes(source: _MappedAdapter) -> tuple[str, ...]:
    m, items = source.mapping, source.items
    notes = [
        f"items read from {items.file}"
        if items is not None
        else "item table derived from the engagement log: one item per item id, "
        "topics = every topic seen with it",
        f"action from column {m.action!r}"
        if m.action
        else f"no action column: every engagement is {m.default_action!r}",
        "ids read as integers (integer_ids = true)"
        if m.integer_ids
        else "ids read as text, exactly as written (integer_ids = false)",
    ]
    if items is not None and items.vector:
        notes.append(
            f"item vector: {len(items.vector)} column(s) {', '.join(items.vector)}; "
            "an empty cell marks the item invalid"
        )
    if items is not None and items.categorical:
        notes.append(f"categorical item features: {', '.join(items.categorical)}")
    if items is not None and items.title is not None:
        notes.append(f"item titles from column {items.title!r} (vocab/item_titles.parquet)")
    if m.source_topic is None:
        notes.append("no logged condition: source_topic is null")
    else:
        notes.append(f"logged condition (source_topic) from column {m.source_topic!r}")
    if source.topics is not None:
        notes.append(f"topic names read from {source.topics.file}")
    if source.user_topics is None:
        notes.append("user_topics is empty (the mapping names no followed topics)")
    else:
        follows = source.user_topics
        notes.append(f"followed topics read from {follows.file}")
        if follows.followed_at is None:
            notes.append("no followed_at column: every follow counts from time 0")
    return tuple(notes)


@dataclass
class _MappedAdapter:
    """What both generic adapters share: the mapped files, read through the format's `_read`."""

    mapping: ColumnMapping
    _: KW_ONLY
    items: ItemsMapping | None = None
    items_file: Path | None = None
    topics: TopicsMapping | None = None
    user_topics: UserTopicsMapping | None = None
    batch_rows: int = 1_000_000
    name: str = "csv"

    def __post_init__(self) -> None:
        if self.items is not None and self.items_file is not None:
            raise ConfigError(["items_file: give the item file once, as items_file or items"])
        if self.items_file is not None:
            self.items = ItemsMapping(file=self.items_file)
        self.items_file = None if self.items is None else self.items.file

    def _read(
        self, path: Path, table: str, quarantine: Quarantine, columns: Sequence[str], rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Reads `columns` of one file of the source in batches of `rows` rows."""
        raise NotImplementedError

    @property
    def item_id(self) -> str:
        return self.mapping.item if self.items is None or self.items.id is None else self.items.id

    @property
    def item_topics(self) -> str | None:
        if self.items is not None and self.items.topics is not None:
            return self.items.topics
        return self.mapping.item_topics

    @property
    def follower(self) -> str:
        follows = self.user_topics
        return self.mapping.user if follows is None or follows.user is None else follows.user

    def columns(self) -> list[str]:
        """Engagement columns; item topics come from the item file when there is one."""
        return self.mapping.columns(item_topics=self.items is None)

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset:
        """Raw tables of the engagement log `source` and the side files.

        Every file is probed first, so that file-level defects fail here.

        Raises:
            InputFileError: a file is missing, empty, unreadable in its format
                (not in the encoding, not Parquet), or lacks a mapped column.
        """
        probe(lambda q: self._read(source, "engagements", q, self.columns(), 1))
        items, follows, topics = self.items, self.user_topics, self.topics
        if items is not None:
            columns = item_columns(items, self.item_id, self.item_topics)
            probe(lambda q: self._read(items.file, "items", q, columns, 1))
        if follows is not None:
            columns = follow_columns(follows, self.follower)
            probe(lambda q: self._read(follows.file, "user_topics", q, columns, 1))
        names: dict[str, str] = {}
        parents: dict[str, str] = {}
        if topics is not None:
            batches = self._read(
                topics.file, "topics", quarantine, topic_columns(topics), self.batch_rows
            )
            names, parents = topic_table(batches, topics, quarantine)
        return RawDataset(
            name=self.name,
            items=lambda: self._items(source, quarantine),
            engagements=lambda: self._engagements(source, quarantine),
            user_topics=lambda: self._follows(quarantine),
            vector_dim=len(items.vector) if items is not None and items.vector else None,
            n_categorical=len(items.categorical) if items is not None else 0,
            topic_names=names,
            topic_parents=parents,
            integer_ids=self.mapping.integer_ids,
            notes=_notes(self),
        )

    def _items(self, source: Path, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        m, items = self.mapping, self.items
        if items is not None:
            columns = item_columns(items, self.item_id, self.item_topics)
            yield from item_batches(
                self._read(items.file, "items", quarantine, columns, self.batch_rows),
                items,
                id_column=self.item_id,
                topics_column=self.item_topics,
                separator=m.topic_separator,
                quarantine=quarantine,
            )
            return
        # A throwaway quarantine: the engagement pass reports the log's structural defects.
        derived = DerivedItems(batch_rows=self.batch_rows)
        for batch in self._read(
            source, "engagements", Quarantine(), self.columns(), self.batch_rows
        ):
            derived.add(
                as_raw_key(batch.column(m.item)),
                topic_lists(batch, m.item_topics, m.topic_separator),
                batch.column("_row"),
                batch.column("_file")[0].as_py(),
            )
        yield from derived.batches()

    def _engagements(self, source: Path, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        for batch in self._read(source, "engagements", quarantine, self.columns(), self.batch_rows):
            yield _engagements(self.mapping, batch)

    def _follows(self, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        follows = self.user_topics
        if follows is None:
            return
        columns = follow_columns(follows, self.follower)
        yield from follow_batches(
            self._read(follows.file, "user_topics", quarantine, columns, self.batch_rows),
            follows,
            user_column=self.follower,
        )


@dataclass
class CsvAdapter(_MappedAdapter):
    """Reads an engagement log in delimited text (CSV, TSV, ...) through a `ColumnMapping`.

    Every side file is delimited text with the log's delimiter and encoding and
    a header row (`mapping.header` names the log's fields only).

    Args:
        mapping: where the canonical columns are in the log.
        items: the item file and its columns (topics, title, vector, categorical).
        items_file: short for `items=ItemsMapping(file=items_file)`.
        topics: the topic file (names and parents of topic keys).
        user_topics: the followed-topics file.
        batch_rows: rows per yielded batch.
        name: dataset name for the report.
    """

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


@dataclass
class ParquetAdapter(_MappedAdapter):
    """Reads an engagement log in Parquet (a file, or a directory of `*.parquet` shards).

    Batches are read with pyarrow; `_row` is the 0-based record index within
    each file. Integer ids and timestamps keep their types; Arrow timestamps and
    dates become seconds; a list column of item topics is used as is. Every
    side file is Parquet too.

    Args:
        mapping: where the canonical columns are (delimiter, encoding and
            header are ignored).
        items / items_file / topics / user_topics: the side files, as for `CsvAdapter`.
        batch_rows: rows per yielded batch.
        name: dataset name for the report.
    """

    name: str = "parquet"

    def _read(
        self, path: Path, table: str, quarantine: Quarantine, columns: Sequence[str], rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Parquet cells are typed: nothing structural to quarantine, defects are file-level."""
        return read_parquet(path, columns, rows)


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


def read_histories(path: Path, mapping_file: Path) -> tuple[pa.Table, Quarantine]:
    """User histories in a file with the engagement columns of a mapping file.

    The file is Parquet when its name ends in `.parquet` (or it is a folder of
    shards), else delimited text as the mapping says. Returns the usable rows,
    `user_id`, `item_id` (raw ids as text), `ts` (int64 seconds) and `row` (the
    file's line, or its record index for Parquet), and a quarantine holding every
    row that is not usable (a missing id, a time that is not a time, a broken
    line), named by file, row, column and rule.

    Raises:
        ConfigError: a bad mapping file. InputFileError: the file is unreadable
            or lacks a mapped column.
    """
    mapping = read_mapping_file(mapping_file).mapping
    parquet = path.suffix == ".parquet" or path.is_dir()
    adapter = ParquetAdapter(mapping) if parquet else CsvAdapter(mapping)
    quarantine = Quarantine()
    raw = adapter.read(path, quarantine)
    parts = []
    for batch in raw.engagements():
        rows = _Rows(quarantine, "engagements", batch)
        rows.ids("user_id", False)
        rows.ids("item_id", False)
        ts = rows.times("ts")
        parts.append(
            pa.table(
                {
                    "user_id": pc.utf8_trim_whitespace(batch.column("user_id").cast(pa.string())),
                    "item_id": pc.utf8_trim_whitespace(batch.column("item_id").cast(pa.string())),
                    "ts": pa.array(ts, pa.int64()),
                    "row": batch.column("_row").cast(pa.int64()),
                }
            ).filter(pa.array(rows.alive))
        )
    if not parts:
        empty = {
            "user_id": pa.string(),
            "item_id": pa.string(),
            "ts": pa.int64(),
            "row": pa.int64(),
        }
        return pa.schema(empty).empty_table(), quarantine
    return pa.concat_tables(parts), quarantine


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
        spec.mapping,
        items=spec.items,
        topics=spec.topics,
        user_topics=spec.user_topics,
        batch_rows=batch_rows,
        name=spec.name or name,
    )


__all__ = [
    "ColumnMapping",
    "CsvAdapter",
    "ItemsMapping",
    "MappingFile",
    "ParquetAdapter",
    "TopicsMapping",
    "UserTopicsMapping",
    "load_generic_adapter",
    "read_histories",
    "read_mapping_file",
]
