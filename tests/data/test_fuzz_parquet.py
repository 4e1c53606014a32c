"""Fuzzing the Parquet source reader: hostile column types and values, damaged files.

Each example writes an item file and an engagement log as Parquet, with ids,
timestamps and topics of many Arrow types and awkward values (see
`hostile_parquet`), now and then an empty table, a missing column, repeated
rows or damaged bytes, and prepares them through the generic Parquet adapter.
Nothing may raise but the library's own errors (a whole-file refusal names the
file); every row is kept or quarantined once; a row whose cells are all fine
is kept unless a cross-row rule (a duplicate, a time far outside the span)
quarantines it; every kept row reads back as written.
"""

import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from multiembed.config import DataConfig
from multiembed.data.adapters.generic import ColumnMapping, ParquetAdapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.data.vocab import Vocab
from multiembed.errors import DataError, InputFileError
from tests.data.hostile_helpers import fuzz
from tests.data.hostile_parquet import (
    BAD,
    Column,
    id_column,
    rarely,
    source_topic_column,
    topics_column,
    ts_column,
)

#: Rules that may quarantine an engagement whose every cell is fine.
_CROSS_ROW = ("duplicate engagement row", "timestamp far outside", "item_id not in the item table")


@st.composite
def _table(draw: st.DrawFn, columns: dict) -> tuple[dict[str, Column], str | None]:
    """Columns drawn by role, rows now and then repeated, a column now and then left out."""
    n = 0 if rarely(draw, 25) else draw(st.integers(1, 7))
    drawn = {name: draw(strategy(n)) for name, strategy in columns.items()}
    if n and rarely(draw, 5):  # repeated rows
        picks = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=3))
        for col in drawn.values():
            col.array = pa.concat_arrays([col.array, col.array.take(pa.array(picks))])
            col.owed = col.owed + [col.owed[k] for k in picks]
    missing = draw(st.sampled_from(list(columns))) if rarely(draw, 30) else None
    return drawn, missing


def _write(path: Path, drawn: dict[str, Column], missing: str | None) -> None:
    arrays = {name: col.array for name, col in drawn.items() if name != missing}
    pq.write_table(pa.table(arrays), path)


@st.composite
def _damage(draw: st.DrawFn, path: Path) -> None:
    """Truncates the file or flips a run of bytes in its middle."""
    data = bytearray(path.read_bytes())
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data) - 1))]
    else:
        at = draw(st.integers(len(data) // 4, 3 * len(data) // 4))
        width = draw(st.integers(1, 16))
        data[at : at + width] = bytes(b ^ 0xFF for b in data[at : at + width])
    path.write_bytes(bytes(data))


def _refusal(
    path: Path, drawn: dict[str, Column], missing: str | None, required: list[str]
) -> str | None:
    """The problem that must refuse `path` as a whole, if any (the first one met may differ)."""
    if missing is not None and missing in required:
        return "missing column"
    n = len(next(iter(drawn.values())).array)
    if n == 0:
        return "has no rows"
    return next((c.refusal for c in drawn.values() if c.refusal), None)


def _decode(out: Path) -> tuple[dict[object, list[str]], Counter]:
    """Prepared items (raw id -> raw topics) and engagements (raw cells), through the vocabs."""
    vocab = {
        name: Vocab.load(out / "vocab" / f"{name}.parquet") for name in ("users", "items", "topics")
    }
    items = pq.read_table(out / "items.parquet").to_pydict()
    raw_items = vocab["items"].decode(items["item_id"]).to_pylist()
    topic_keys = vocab["topics"].raw.to_pylist()
    got_items = {
        i: [topic_keys[t] for t in topics]
        for i, topics in zip(raw_items, items["topics"], strict=True)
    }
    eng = pq.read_table(out / "engagements.parquet").to_pydict()
    users = vocab["users"].decode(eng["user_id"]).to_pylist()
    its = vocab["items"].decode(eng["item_id"]).to_pylist()
    topics = [None if t is None else topic_keys[t] for t in eng["source_topic"]]
    return got_items, Counter(zip(users, its, eng["ts"], eng["action"], topics, strict=True))


def _owed_rows(drawn: dict[str, Column], names: list[str]) -> list[tuple | None]:
    """Per row: the tuple of owed cells in `names` order, or None when a cell is BAD."""
    rows = zip(*(drawn[name].owed for name in names), strict=True)
    return [None if any(v is BAD for v in row) else row for row in rows]


@fuzz(800)
@given(data=st.data())
def test_parquet_sources_are_read_quarantined_or_refused(data):
    separator = data.draw(st.sampled_from(["|", ";"]))
    logged = data.draw(st.booleans())
    items, items_missing = data.draw(
        _table({"i": id_column, "cats": lambda n: topics_column(n, separator)})
    )
    eng_columns = {"u": id_column, "i": id_column, "t": ts_column}
    if logged:
        eng_columns["st"] = source_topic_column
    engagements, eng_missing = data.draw(_table(eng_columns))
    mapping = ColumnMapping(
        user="u",
        item="i",
        ts="t",
        item_topics="cats",
        topic_separator=separator,
        source_topic="st" if logged else None,
        integer_ids=True,  # the columns drawn above owe integer ids
    )
    with tempfile.TemporaryDirectory() as tmp:
        items_path, log_path = Path(tmp) / "items.parquet", Path(tmp) / "log.parquet"
        _write(items_path, items, items_missing)
        _write(log_path, engagements, eng_missing)
        refusals = {
            items_path: _refusal(items_path, items, items_missing, ["i", "cats"]),
            log_path: _refusal(log_path, engagements, eng_missing, list(eng_columns)),
        }
        damaged = None
        if data.draw(st.integers(0, 7)) == 3:
            damaged = data.draw(st.sampled_from([items_path, log_path]))
            data.draw(_damage(damaged))
        q = Quarantine()
        adapter = ParquetAdapter(mapping, items_file=items_path, batch_rows=3)
        report, error = _prepare(adapter, log_path, Path(tmp) / "out", q)
        event(f"{'damaged, ' if damaged else ''}{type(error).__name__ if error else 'prepared'}")
        if isinstance(error, InputFileError):
            assert error.path in (str(items_path), str(log_path)), str(error)
            problem = refusals[Path(error.path)]
            assert Path(error.path) == damaged or problem is not None, str(error)
            if Path(error.path) != damaged:
                assert error.problem.startswith(problem), (problem, str(error))
            return
        if error is not None:  # nothing valid to prepare
            assert "no valid" in str(error), str(error)
        if damaged is not None:  # damaged values may read as other values
            if report is not None:
                for table in report["tables"].values():
                    assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
            return
        assert refusals[items_path] is None, refusals
        if report is not None or q.rows_in("engagements"):
            assert refusals[log_path] is None, refusals  # the log was read through
        _check(Path(tmp), items, engagements, list(eng_columns), report, q)


def _prepare(
    adapter: ParquetAdapter, source: Path, out: Path, q: Quarantine
) -> tuple[dict | None, InputFileError | DataError | None]:
    """prepare's report, or the library error that refused the data."""
    try:
        return prepare(adapter.read(source, q), out, config=DataConfig(), quarantine=q), None
    except (InputFileError, DataError) as err:
        return None, err


def _check(tmp: Path, items, engagements, eng_names, report, q: Quarantine) -> None:
    """Rows in = kept + quarantined; owed rows kept unless a cross-row rule applies; values."""
    quarantined = q.to_table().to_pylist()
    by_table: dict[str, dict[int, str]] = {"items": {}, "engagements": {}}
    for r in quarantined:
        assert r["row"] not in by_table[r["table"]], r  # once per row
        by_table[r["table"]][r["row"]] = r["rule"]
    owed_items = _owed_rows(items, ["i", "cats"])
    owed_eng = _owed_rows(engagements, eng_names)
    # Items: every row with a bad cell is quarantined; of the rest, the first of an id is kept.
    kept_items: dict[object, list[str]] = {}
    for row, owed in enumerate(owed_items):
        if owed is None or owed[0] in kept_items:
            assert row in by_table["items"], (row, owed)
            continue
        assert row not in by_table["items"], (row, owed, by_table["items"].get(row))
        kept_items[owed[0]] = owed[1]
    if report is None and not q.rows_in("engagements"):  # no valid item: the log is unread
        assert not kept_items, kept_items
        return
    want_eng: Counter = Counter()
    for row, owed in enumerate(owed_eng):
        if owed is None or owed[1] not in kept_items:
            assert row in by_table["engagements"], (row, owed)
            continue
        rule = by_table["engagements"].get(row)
        if rule is not None:
            assert rule.startswith(_CROSS_ROW), (row, owed, rule)
            continue
        topic = owed[3] if len(owed) > 3 else None
        want_eng[(owed[0], owed[1], owed[2], "click", topic)] += 1
    n_items, n_eng = len(owed_items), len(owed_eng)
    if report is None:  # no valid item, or no engagement passed the row rules
        assert not kept_items or not any(o is not None and o[1] in kept_items for o in owed_eng), (
            kept_items,
            owed_eng,
        )
        return
    tables = report["tables"]
    for table in tables.values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    assert tables["items"]["rows_in"] == n_items
    assert tables["engagements"]["rows_in"] == n_eng
    got_items, got_eng = _decode(tmp / "out")
    assert got_items == kept_items
    assert got_eng == want_eng


# -- what the fuzz test found, pinned ------------------------------------------------


def test_a_footer_naming_a_column_in_bytes_that_are_not_utf8_is_refused_by_file(tmp_path):
    source = tmp_path / "log.parquet"
    pq.write_table(pa.table({"abcé": [1, 2]}), source, store_schema=False)
    source.write_bytes(source.read_bytes().replace("abcé".encode(), b"abc\x9a\x9a"))
    mapping = ColumnMapping(user="abcé", item="i", ts="t")
    with pytest.raises(InputFileError) as err:
        ParquetAdapter(mapping).read(source, Quarantine())
    assert str(err.value).startswith(f"{source}: is not a readable Parquet file")
