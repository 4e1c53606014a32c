"""Taobao UserBehavior: page views, carts, favourites and purchases; categories as topics.

`UserBehavior.csv` (Alibaba, Tianchi dataset 649) has no header; each row is
`user_id,item_id,category_id,behavior_type,timestamp` with behaviour `pv`,
`cart`, `fav` or `buy`. There is no item file: the item table is derived from
the log (one item per distinct item id, topics = its category id), which means
the file is read twice: once for items (structural defects ignored there, so
they are reported once) and once for engagements. An unknown behaviour is
passed through unmapped, so validation quarantines it ("unknown action kind").

The release documents its window as 2017-11-25 00:00 to 2017-12-03 24:00 China
time (UTC+8); `RawDataset.ts_window` carries it, so rows outside it are
quarantined. There is no logged condition (`source_topic` is null) and no
followed topic (`user_topics` is empty).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from multiembed.data.adapters._common import (
    DerivedItems,
    engagement_batch,
    map_values,
    nonempty,
    probe,
    singletons,
)
from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.errors import InputFileError

LOG_FILE = "UserBehavior.csv"
COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")

#: Raw behaviour -> canonical action kind (`schema.ACTIONS`).
BEHAVIOURS = {"pv": "view", "cart": "cart", "fav": "favorite", "buy": "purchase"}

_CHINA = dt.timezone(dt.timedelta(hours=8))
#: The documented window [start, end) in seconds: 2017-11-25 00:00 .. 2017-12-04 00:00 UTC+8.
WINDOW = (
    int(dt.datetime(2017, 11, 25, tzinfo=_CHINA).timestamp()),
    int(dt.datetime(2017, 12, 4, tzinfo=_CHINA).timestamp()),
)


class TaobaoAdapter:
    """Reads Alibaba's Taobao `UserBehavior.csv` (a file, or a directory holding it).

    Args:
        batch_rows: rows per yielded batch.

    >>> TaobaoAdapter(batch_rows=1000).name
    'taobao'
    >>> WINDOW
    (1511539200, 1512316800)
    """

    name = "taobao"

    def __init__(self, *, batch_rows: int = 1_000_000) -> None:
        self.batch_rows = batch_rows

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset:
        """Raw tables of `source` (`UserBehavior.csv` or its directory).

        Raises:
            InputFileError: the log is missing or empty, or `source` is a
                directory without `UserBehavior.csv`.
        """
        path = source / LOG_FILE if source.is_dir() else source
        if source.is_dir() and not path.is_file():
            raise InputFileError(
                source, f"has no {LOG_FILE}", expected="Taobao UserBehavior.csv (no header)"
            )
        probe(lambda q: self._log(path, q, batch_rows=1))
        notes = (
            "item table derived from the log: one item per item_id, topics = its category_id",
            "actions: pv -> view, cart -> cart, fav -> favorite, buy -> purchase",
            "documented window 2017-11-25 00:00 to 2017-12-03 24:00 China time (UTC+8); "
            "rows outside it are quarantined",
            "no logged condition (source_topic null) and no followed topics (user_topics empty)",
        )
        return RawDataset(
            name=self.name,
            items=lambda: self._items(path),
            engagements=lambda: self._engagements(path, quarantine),
            ts_window=WINDOW,
            notes=notes,
        )

    def _log(
        self, path: Path, quarantine: Quarantine, *, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        return read_delimited(
            path,
            table="engagements",
            quarantine=quarantine,
            columns=list(COLUMNS),
            header=list(COLUMNS),
            quoting=False,
            batch_rows=batch_rows,
        )

    def _items(self, path: Path) -> Iterator[pa.RecordBatch]:
        # A throwaway quarantine: the engagement pass reports the log's structural defects.
        derived = DerivedItems(batch_rows=self.batch_rows)
        for batch in self._log(path, Quarantine(), batch_rows=self.batch_rows):
            category = pc.utf8_trim_whitespace(batch.column("category_id"))
            empty = pa.scalar([], pa.list_(pa.string()))
            topics = pc.if_else(nonempty(category), singletons(category), empty)
            derived.add(
                pc.utf8_trim_whitespace(batch.column("item_id")),
                topics,
                batch.column("_row"),
                str(path),
            )
        yield from derived.batches()

    def _engagements(self, path: Path, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        for batch in self._log(path, quarantine, batch_rows=self.batch_rows):
            # Unknown kinds pass through unmapped, for validation to quarantine.
            action = map_values(pc.utf8_trim_whitespace(batch.column("behavior_type")), BEHAVIOURS)
            yield engagement_batch(
                user_id=batch.column("user_id"),
                item_id=batch.column("item_id"),
                ts=batch.column("timestamp"),
                action=action,
                file=batch.column("_file"),
                row=batch.column("_row"),
            )


__all__ = ["BEHAVIOURS", "COLUMNS", "LOG_FILE", "WINDOW", "TaobaoAdapter"]
