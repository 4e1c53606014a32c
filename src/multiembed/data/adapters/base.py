"""What a dataset adapter hands to validation: raw tables as streams of Arrow batches.

An adapter turns one source layout (MovieLens CSV, Last.fm HetRec, the
synthetic world, ...) into three *raw* tables. Raw tables use the canonical
column names but raw values: ids may be integers or strings, timestamps may be
strings, topics are raw keys. Validation (`multiembed.data.validate`) parses
every cell, quarantines bad rows and assigns contiguous ids.

Raw columns (every batch also carries `_file` string and `_row` int64, the
provenance written to the quarantine file):

- engagements: `user_id`, `item_id` (int64 or string), `ts` (int64, float64 or
  string: seconds since 1970, or ISO-8601 such as `2017-11-25T08:30:00Z` with an
  optional UTC offset), `action` (string, one of
  `schema.ACTIONS`), `source_topic` (raw topic key or null).
- items: `item_id`, `topics` (list of raw topic keys), optionally `vector`
  (list<float32>, null = missing) and `categorical` (list<string or int>, null
  elements = missing).
- user_topics: `user_id`, `topic` (raw key), `followed_at`, `unfollowed_at`
  (nullable); timestamps as for engagements.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa

from multiembed.data.quarantine import Quarantine

BatchStream = Callable[[], Iterator[pa.RecordBatch]]


def _no_batches() -> Iterator[pa.RecordBatch]:
    return iter(())


@dataclass(frozen=True, kw_only=True)
class RawDataset:
    """Raw tables of one source, each a callable returning a fresh batch iterator.

    Streams are callables so that an adapter can read a source twice (for
    example to derive the item table from the engagement log) and so that
    nothing is read before validation asks for it. `items` is always read
    before `engagements`, and `engagements` before `user_topics`.

    Attributes:
        name: dataset name written into the report.
        items / engagements / user_topics: batch streams of the raw tables.
        vector_dim: length of item vectors, or None when items have none.
        n_categorical: number of categorical item fields.
        ts_window: optional documented [start, end) of the data in seconds; rows
            outside it are quarantined. Without it the span is estimated robustly.
        topic_names: raw topic key -> human-readable name (for reports).
        topic_parents: raw topic key -> raw key of its parent topic (sub-topics).
        integer_ids: raw user and item ids must be integers (rule "not an integer id";
            the integer -1 is reserved and quarantined as well).
        notes: facts about the source that the report should carry.
    """

    name: str
    items: BatchStream
    engagements: BatchStream
    user_topics: BatchStream = _no_batches
    vector_dim: int | None = None
    n_categorical: int = 0
    ts_window: tuple[int, int] | None = None
    topic_names: Mapping[str, str] = field(default_factory=dict)
    topic_parents: Mapping[str, str] = field(default_factory=dict)
    integer_ids: bool = True
    notes: tuple[str, ...] = ()


class Adapter(Protocol):
    """Reads one source layout into raw tables.

    Structural defects found while reading (truncated lines, undecodable text,
    wrong field counts) go to `quarantine`; file-level defects raise
    `multiembed.errors.InputFileError`.
    """

    name: str

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset: ...
