"""A raw topic -1 is the service's padding value: its row is quarantined, wherever it comes from."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from multiembed.config import DataConfig
from multiembed.data.adapters.generic import ColumnMapping, CsvAdapter, ParquetAdapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.data.validate import RESERVED_TOPIC_RULE, validate_user_topics

T0 = 1_600_000_000


def _prepare(adapter, source: Path, out: Path) -> tuple[dict, list[dict], list[str]]:
    q = Quarantine()
    report = prepare(adapter.read(source, q), out, config=DataConfig(), quarantine=q)
    topics = pq.read_table(out / "vocab" / "topics.parquet").column("raw").to_pylist()
    return report, q.to_table().to_pylist(), topics


def test_an_item_topic_of_minus_one_in_text_quarantines_the_item(tmp_path):
    source = tmp_path / "log.csv"
    source.write_text(f"u,i,t,tags\n1,10,{T0},a|-1\n2,11,{T0 + 1},a| b\n")
    mapping = ColumnMapping(user="u", item="i", ts="t", item_topics="tags")
    report, rows, topics = _prepare(CsvAdapter(mapping), source, tmp_path / "out")
    item = [(r["row"], r["column"], r["rule"]) for r in rows if r["table"] == "items"]
    assert item == [(2, "topics", RESERVED_TOPIC_RULE)]
    assert RESERVED_TOPIC_RULE == "topic -1 is reserved (the service pads with it)"
    eng = [r["rule"] for r in rows if r["table"] == "engagements"]
    assert eng == ["item_id not in the item table"]
    assert report["tables"]["items"]["rows_kept"] == 1
    assert topics == ["a", "b"]


def test_parquet_item_and_logged_topics_of_minus_one_quarantine_their_rows(tmp_path):
    items = tmp_path / "items.parquet"
    pq.write_table(
        pa.table({"i": [10, 11, 12], "cats": pa.array([[1, -1], [2], None], pa.list_(pa.int64()))}),
        items,
    )
    log = tmp_path / "log.parquet"
    pq.write_table(
        pa.table(
            {
                "u": [1, 2, 3],
                "i": [11, 11, 12],
                "t": [T0, T0 + 1, T0 + 2],
                "st": pa.array([-1.0, 2.0, None], pa.float64()),  # as pandas writes an int column
            }
        ),
        log,
    )
    mapping = ColumnMapping(user="u", item="i", ts="t", item_topics="cats", source_topic="st")
    report, rows, topics = _prepare(
        ParquetAdapter(mapping, items_file=items), log, tmp_path / "out"
    )
    got = [(r["table"], r["row"], r["column"], r["rule"], r["value"]) for r in rows]
    assert got == [
        ("items", 0, "topics", RESERVED_TOPIC_RULE, "['1', '-1']"),
        ("engagements", 0, "source_topic", RESERVED_TOPIC_RULE, "-1"),
    ]
    assert report["tables"]["engagements"]["rows_kept"] == 2
    assert topics == ["2"]


def test_a_followed_topic_of_minus_one_quarantines_the_follow():
    batch = pa.RecordBatch.from_pydict(
        {
            "user_id": ["1", "1", "2"],
            "topic": pa.array(["a", "-1", " -1 "]),
            "followed_at": [T0, T0, T0],
            "unfollowed_at": pa.nulls(3, pa.int64()),
            "_file": ["tags.dat"] * 3,
            "_row": [5, 6, 7],
        }
    )
    q = Quarantine()
    kept = validate_user_topics(iter([batch]), quarantine=q, integer_ids=True)
    assert kept.column("topic").to_pylist() == ["a", " -1 "]  # a different key: no clash
    assert [(r["row"], r["column"], r["rule"]) for r in q.to_table().to_pylist()] == [
        (6, "topic", RESERVED_TOPIC_RULE)
    ]
    ints = batch.set_column(1, "topic", pa.array([3, -1, None], pa.int64()))
    q = Quarantine()
    kept = validate_user_topics(iter([ints]), quarantine=q, integer_ids=True)
    assert kept.column("topic").to_pylist() == [3]
    assert q.by_rule("user_topics") == {
        f"topic: {RESERVED_TOPIC_RULE}": 1,
        "topic: missing value": 1,
    }


def test_a_missing_logged_topic_written_as_nan_is_no_topic(tmp_path):
    """Pandas writes a nullable int column as float64 with NaN: NaN is "none", not "nan"."""
    items = tmp_path / "items.parquet"
    pq.write_table(pa.table({"i": [10], "cats": pa.array([[2]], pa.list_(pa.int64()))}), items)
    log = tmp_path / "log.parquet"
    st = pa.array([2.0, float("nan")], pa.float64())
    pq.write_table(pa.table({"u": [1, 2], "i": [10, 10], "t": [T0, T0 + 1], "st": st}), log)
    mapping = ColumnMapping(user="u", item="i", ts="t", item_topics="cats", source_topic="st")
    _, rows, topics = _prepare(ParquetAdapter(mapping, items_file=items), log, tmp_path / "out")
    assert rows == []
    assert topics == ["2"]
    engagements = pq.read_table(tmp_path / "out" / "engagements.parquet")
    assert engagements.column("source_topic").to_pylist() == [0, None]
