"""Prepare: raw tables of any source -> validated canonical Parquet tables plus a report.

Writes into `out_dir`:
`engagements.parquet`, `items.parquet`, `user_topics.parquet` (canonical
schemas, contiguous ids), `vocab/{users,items,topics}.parquet` (and
`vocab/item_titles.parquet` when the items have titles),
`quarantine.parquet` (every rejected row with file, row, column, rule, value),
`report.json` (rows in/kept/quarantined per table, rules, counts) and
`manifest.json` (SHA-256 of every file, checked whenever a table is read).

The directory is written whole: everything goes to a staging directory beside
`out_dir` that replaces it at the end (`multiembed.data.prepared`), so a
prepare that is killed or fails on bad input leaves the previous directory as
it was. When no row of a table is valid, the report and the quarantine are
still written (without tables or manifest) and the error says what to fix.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from multiembed.config import Config
from multiembed.config.sections import DataConfig
from multiembed.data._parse import robust_span
from multiembed.data._report import DAY, day, failure_report, success_report, write_report
from multiembed.data.adapters.base import RawDataset
from multiembed.data.prepared import commit, discard, stage, write_manifest
from multiembed.data.quarantine import Quarantine
from multiembed.data.schema import (
    ACTIONS,
    ENGAGEMENTS_FILE,
    ENGAGEMENTS_SCHEMA,
    ITEM_TITLES_FILE,
    ITEMS_FILE,
    QUARANTINE_FILE,
    REPORT_FILE,
    USER_TOPICS_FILE,
    USER_TOPICS_SCHEMA,
    VOCAB_DIR,
    items_schema,
)
from multiembed.data.validate import (
    _Rows,
    duplicate_rows,
    row_hashes,
    stage_engagements,
    validate_items,
    validate_user_topics,
)
from multiembed.data.vocab import Vocab
from multiembed.errors import DataError


class _NothingValid(Exception):
    """Every row of `table` was quarantined (or none was read)."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table


def prepare(
    raw: RawDataset,
    out_dir: Path,
    *,
    config: DataConfig,
    quarantine: Quarantine | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Validates `raw` and writes the canonical tables; returns the report (also `report.json`).

    Args:
        raw: the adapter's raw tables.
        out_dir: directory to write (created if needed; an earlier prepare's
            output there is replaced as a whole).
        config: validation settings.
        quarantine: the adapter's quarantine (it may already hold structural
            rejects found while reading); a new one when None.
        progress: optional callable `progress(stage: str)` for user feedback.

    Raises:
        DataError: no valid item or engagement row (the report and quarantine
            are written to `out_dir` all the same, and the message names the
            likely fix), or `out_dir` holds files prepare did not write.
    """
    return _prepare_whole(raw, out_dir, config, quarantine, progress)


def _prepare_whole(
    raw: RawDataset,
    out_dir: Path,
    config: DataConfig,
    quarantine: Quarantine | None,
    progress: Any,
    also: Callable[[Path], object] | None = None,
) -> dict[str, Any]:
    """`prepare` into a staging directory that replaces `out_dir` once complete.

    `also(staging)` writes more files (ground truth) before the manifest.
    """
    say = progress or (lambda stage: None)
    q = quarantine if quarantine is not None else Quarantine()
    staging = stage(out_dir)
    try:
        try:
            report = _write_tables(raw, staging, config, q, say)
        except _NothingValid as nothing:
            report = failure_report(raw, q, nothing.table)
            q.write(staging / QUARANTINE_FILE)
            write_report(staging, report)
            commit(staging, out_dir)
            raise DataError(
                f"{report['error']}. See {out_dir / QUARANTINE_FILE} and {out_dir / REPORT_FILE}"
            ) from None
        if also is not None:
            also(staging)
        write_manifest(staging)
        commit(staging, out_dir)
    except BaseException:
        discard(staging)
        raise
    return report


def _write_tables(
    raw: RawDataset, out_dir: Path, config: DataConfig, q: Quarantine, say: Any
) -> dict[str, Any]:
    say("validating items")
    items = validate_items(
        raw.items(),
        quarantine=q,
        vector_dim=raw.vector_dim,
        n_categorical=raw.n_categorical,
        integer_ids=raw.integer_ids,
    )
    if items.num_rows == 0:
        raise _NothingValid("items")

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".staging-") as tmp:
        staging = Path(tmp) / "engagements.parquet"
        say("validating engagements")
        staged = stage_engagements(
            raw.engagements(),
            quarantine=q,
            item_ids=items.column("item_id").combine_chunks(),
            integer_ids=raw.integer_ids,
            staging_path=staging,
        )
        if staged == 0:
            raise _NothingValid("engagements")
        say("validating user topics")
        follows = validate_user_topics(raw.user_topics(), quarantine=q, integer_ids=raw.integer_ids)

        say("building vocabularies")
        staged_file = pq.ParquetFile(staging)
        users = Vocab.from_arrays(
            [staged_file.read(columns=["user_id"]).column(0), follows.column("user_id")]
        )
        item_vocab = Vocab.from_arrays([items.column("item_id")])
        topics = Vocab.from_arrays(
            [
                pc.list_flatten(items.column("topics")),
                staged_file.read(columns=["source_topic"]).column(0),
                follows.column("topic"),
            ]
        )

        say("checking time span and duplicates")
        span, rejected = _cross_row_rules(staged_file, raw, config, users, item_vocab, topics)
        say("writing engagements")
        kept_engagements, kept_span = _write_engagements(
            staged_file,
            rejected,
            span,
            q,
            users,
            item_vocab,
            topics,
            out_dir / ENGAGEMENTS_FILE,
            documented=raw.ts_window is not None,
        )
        del staged_file

    say("writing items, topics and vocabularies")
    (out_dir / VOCAB_DIR).mkdir()
    _write_items(items, raw, item_vocab, topics, out_dir)
    _write_user_topics(follows, users, topics, out_dir / USER_TOPICS_FILE)
    for name, vocab in (("users", users), ("items", item_vocab), ("topics", topics)):
        vocab.save(out_dir / VOCAB_DIR / f"{name}.parquet")
    _write_topic_names(topics, raw, out_dir / VOCAB_DIR / "topic_names.parquet")
    q.write(out_dir / QUARANTINE_FILE)

    report = success_report(
        raw, q, (span, kept_span), (users, item_vocab, topics), kept_engagements
    )
    report["counts"]["user_topics"] = follows.num_rows
    written = {"items": items.num_rows, "engagements": kept_engagements}
    written["user_topics"] = follows.num_rows
    for name, rows in written.items():
        if report["tables"][name]["rows_kept"] != rows:  # an accounting bug, not bad input
            raise RuntimeError(f"{name}: {rows} rows written but the report says otherwise")
    write_report(out_dir, report)
    return report


def _cross_row_rules(
    staged: pq.ParquetFile,
    raw: RawDataset,
    config: DataConfig,
    users: Vocab,
    items: Vocab,
    topics: Vocab,
) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
    """Rules that need every row: time span and duplicate rows. Returns span and masks."""
    ts = np.asarray(staged.read(columns=["ts"]).column(0).to_numpy(), dtype=np.int64)
    if raw.ts_window is not None:
        lo, hi = raw.ts_window[0], raw.ts_window[1] - 1
    else:
        lo, hi = robust_span(
            ts,
            fence=config.ts_fence,
            min_margin=config.min_span_margin_days * DAY,
        )
    outside = (ts < lo) | (ts > hi)
    del ts
    # Two rows are duplicates when user, item, time, action and logged topic all
    # agree (two tags put on one artist on one day are two engagements).
    h1 = np.empty(staged.metadata.num_rows, dtype=np.uint64)
    h2 = np.empty(staged.metadata.num_rows, dtype=np.uint32)
    action_codes = pa.array(ACTIONS)
    start = 0
    columns = ["user_id", "item_id", "ts", "action", "source_topic"]
    for batch in staged.iter_batches(columns=columns):
        cols = [
            users.encode(batch.column(0)),
            items.encode(batch.column(1)),
            np.asarray(batch.column(2).to_numpy(), dtype=np.int64),
            np.asarray(pc.index_in(batch.column(3), value_set=action_codes).to_numpy(), np.int64),
            topics.encode(batch.column(4)),
        ]
        end = start + batch.num_rows
        h1[start:end] = row_hashes(cols, seed=1)
        h2[start:end] = row_hashes(cols, seed=2).astype(np.uint32)
        start = end
    dup = duplicate_rows(h1, h2, ~outside)
    return (lo, hi), {"outside": outside, "duplicate": dup}


def _write_engagements(
    staged: pq.ParquetFile,
    rejected: dict[str, np.ndarray],
    span: tuple[int, int],
    q: Quarantine,
    users: Vocab,
    items: Vocab,
    topics: Vocab,
    path: Path,
    *,
    documented: bool,
) -> tuple[int, tuple[int, int]]:
    """Writes kept engagements with contiguous ids; returns their count and time span."""
    where = (
        "outside the dataset's documented window" if documented else "far outside the data's span"
    )
    outside = f"timestamp {where} {day(span[0])}..{day(span[1])} UTC"
    kept = 0
    start = 0
    first, last = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    with pq.ParquetWriter(path, ENGAGEMENTS_SCHEMA) as writer:
        for batch in staged.iter_batches():
            end = start + batch.num_rows
            rows = _Rows(q, "engagements", batch, count=False)
            rows.reject("ts", {outside: rejected["outside"][start:end]})
            duplicate = {"duplicate engagement row": rejected["duplicate"][start:end]}
            rows.reject("*", duplicate, values=batch.column("user_id"))
            start = end
            good = batch.filter(pa.array(rows.alive))
            topic_ids = topics.encode(good.column("source_topic"))
            out = pa.RecordBatch.from_arrays(
                [
                    pa.array(users.encode(good.column("user_id"))),
                    pa.array(items.encode(good.column("item_id"))),
                    good.column("ts"),
                    good.column("action"),
                    pa.array(topic_ids.astype(np.int32), mask=topic_ids < 0),
                ],
                schema=ENGAGEMENTS_SCHEMA,
            )
            writer.write_batch(out)
            kept += out.num_rows
            if out.num_rows:
                lo_hi = pc.min_max(out.column("ts"))
                first = min(first, lo_hi["min"].as_py())
                last = max(last, lo_hi["max"].as_py())
    return kept, (first, last)


def _encode_lists(lists: pa.Array | pa.ChunkedArray, vocab: Vocab) -> pa.Array:
    """Encodes a list<raw key> column (no null lists) into list<int32> of contiguous ids."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    flat = vocab.encode(pc.list_flatten(lists)).astype(np.int32)
    lengths = np.asarray(pc.list_value_length(lists).fill_null(0).to_numpy(), dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat, pa.int32()))


def _write_items(
    items: pa.Table, raw: RawDataset, item_vocab: Vocab, topics: Vocab, out_dir: Path
) -> None:
    order = np.argsort(item_vocab.encode(items.column("item_id")))
    items = items.take(pa.array(order))
    schema = items_schema(raw.vector_dim, raw.n_categorical)
    columns: list[pa.Array] = [
        pa.array(np.arange(items.num_rows, dtype=np.int64)),
        _encode_lists(items.column("topics"), topics),
    ]
    if raw.vector_dim is not None:
        columns.append(items.column("vector").combine_chunks().cast(schema.field("vector").type))
    if raw.n_categorical:
        cat = items.column("categorical").combine_chunks()
        flat = pc.list_flatten(cat)
        width = raw.n_categorical
        codes = np.full(len(flat), -1, dtype=np.int32)
        nulls = np.asarray(flat.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        for j in range(width):
            field_values = flat.take(pa.array(np.arange(j, len(flat), width)))
            vocab = Vocab.from_arrays([field_values])
            codes[j::width] = vocab.encode(field_values)
            vocab.save(out_dir / VOCAB_DIR / f"categorical_{j}.parquet")
        flat_arr = pa.array(codes, pa.int32(), mask=nulls)
        present = np.asarray(cat.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        columns.append(pa.FixedSizeListArray.from_arrays(flat_arr, width, mask=pa.array(~present)))
    columns.append(items.column("valid").combine_chunks())
    pq.write_table(pa.Table.from_arrays(columns, schema=schema), out_dir / ITEMS_FILE)
    if "title" in items.column_names:
        titles = pa.table(
            {"id": columns[0], "title": items.column("title").combine_chunks().cast(pa.string())}
        )
        pq.write_table(titles, out_dir / VOCAB_DIR / ITEM_TITLES_FILE)


def _write_user_topics(follows: pa.Table, users: Vocab, topics: Vocab, path: Path) -> None:
    topic_ids = topics.encode(follows.column("topic")).astype(np.int32)
    table = pa.Table.from_arrays(
        [
            pa.array(users.encode(follows.column("user_id"))),
            pa.array(topic_ids),
            follows.column("followed_at"),
            follows.column("unfollowed_at"),
        ],
        schema=USER_TOPICS_SCHEMA,
    )
    pq.write_table(table, path)


def _write_topic_names(topics: Vocab, raw: RawDataset, path: Path) -> None:
    keys = [str(k) for k in topics.raw.to_pylist()]
    names = [raw.topic_names.get(k, k) for k in keys]
    parent_keys = [raw.topic_parents.get(k) for k in keys]
    parent_ids = topics.encode(pa.array(parent_keys, pa.string()))  # cast to the keys' type
    pq.write_table(
        pa.table(
            {
                "id": np.arange(len(keys), dtype=np.int64),
                "name": pa.array(names, pa.string()),
                "parent": pa.array(parent_ids.astype(np.int32), mask=parent_ids < 0),
            }
        ),
        path,
    )


def prepare_dataset(
    name: str,
    source: Path | None,
    out_dir: Path,
    *,
    config: Config,
    mapping_file: Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Reads dataset `name` from `source` with its adapter and prepares it into `out_dir`."""
    from multiembed.data.adapters import make_adapter

    adapter = make_adapter(name, config, mapping_file=mapping_file)
    quarantine = Quarantine()
    if name != "synthetic" and source is None:
        raise DataError(f"dataset {name} needs --source PATH (the folder of the official release)")
    raw = adapter.read(source if source is not None else out_dir, quarantine)
    return _prepare_whole(
        raw,
        out_dir,
        config.data,
        quarantine,
        progress,
        also=getattr(adapter, "write_ground_truth", None),
    )
