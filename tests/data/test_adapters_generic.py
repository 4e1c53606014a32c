"""Generic CSV/Parquet adapters: a column mapping onto the canonical raw tables."""

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import Config, DataConfig
from multiembed.data.adapters import make_adapter
from multiembed.data.adapters.generic import (
    ColumnMapping,
    CsvAdapter,
    ParquetAdapter,
    load_generic_adapter,
)
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.errors import ConfigError, InputFileError

T = 1_700_000_000

LOG = (
    "uid,iid,time,event,cond,cats\n"
    f"1,10,{T},clk,sports,sports|news\n"
    f"1,11,{T + 1},fav,,music\n"
    f"2,10,{T + 2},clk,news, news | tech \n"  # topics are trimmed
    f"2,12,{T + 3},boom,,\n"  # unmapped action: passed through
    f"2,11,{T + 4},clk\n"  # wrong field count
)

MAPPING = ColumnMapping(
    user="uid",
    item="iid",
    ts="time",
    action="event",
    action_map={"clk": "click", "fav": "save"},
    source_topic="cond",
    item_topics="cats",
)


def _table(stream) -> pa.Table:
    return pa.Table.from_batches(list(stream()))


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_mapping_reports_every_problem_at_once():
    with pytest.raises(ConfigError) as err:
        ColumnMapping(
            user="",
            item="iid",
            ts="time",
            default_action="poke",
            action_map={"x": "clik"},
            delimiter="::",
            encoding="klingon",
        )
    message = str(err.value)
    assert "ColumnMapping.user = '': must be a non-empty column name" in message
    assert "ColumnMapping.default_action = 'poke': must be one of click" in message
    assert "ColumnMapping.action_map['x'] = 'clik'" in message
    assert "ColumnMapping.delimiter = '::': must be a single character" in message
    assert "ColumnMapping.encoding = 'klingon'" in message
    assert len(err.value.problems) == 5


def test_mapping_is_immutable():
    source = {"clk": "click"}
    m = ColumnMapping(user="u", item="i", ts="t", action="a", action_map=source)
    source["fav"] = "save"
    assert dict(m.action_map) == {"clk": "click"}
    with pytest.raises(TypeError):
        m.action_map["x"] = "click"  # type: ignore[index]


def test_csv_with_derived_items(tmp_path):
    q = Quarantine()
    raw = CsvAdapter(MAPPING, batch_rows=2).read(_write(tmp_path / "log.csv", LOG), q)

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == ["10", "11", "12"]
    assert [sorted(t) for t in items.column("topics").to_pylist()] == [
        ["news", "sports", "tech"],
        ["music"],
        [],
    ]
    assert items.column("_row").to_pylist() == [2, 3, 5]
    assert q.rows_in("items") == 0  # the derivation pass reports nothing

    eng = _table(raw.engagements)
    assert eng.column("action").to_pylist() == ["click", "save", "click", "boom"]
    assert eng.column("source_topic").to_pylist() == ["sports", "", "news", ""]
    assert q.by_rule("engagements") == {"*: wrong number of fields (expected 6, got 4)": 1}

    # A fresh read for prepare: a stream read twice reports its defects twice.
    q = Quarantine()
    raw = CsvAdapter(MAPPING, batch_rows=2).read(tmp_path / "log.csv", q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)
    e = report["tables"]["engagements"]
    assert (e["rows_in"], e["rows_kept"]) == (5, 3)
    assert e["quarantined_by_rule"]["action: unknown action kind"] == 1
    assert report["tables"]["items"]["rows_in"] == 3


def test_csv_defaults_header_tuple_and_item_file(tmp_path):
    log = _write(tmp_path / "log.tsv", f"a\tx\t{T}\nb\ty\t{T + 1}\n")
    items = _write(tmp_path / "items.tsv", "item\tgenre\nx\tg1|g2\ny\t\n")
    mapping = ColumnMapping(
        user="user",
        item="item",
        ts="ts",
        item_topics="genre",
        delimiter="\t",
        header=("user", "item", "ts"),
        integer_ids=False,
    )
    q = Quarantine()
    raw = CsvAdapter(mapping, items_file=items).read(log, q)
    assert not raw.integer_ids
    assert _table(raw.engagements).column("action").to_pylist() == ["click", "click"]
    got = _table(raw.items)
    assert got.column("topics").to_pylist() == [["g1", "g2"], []]
    assert got.column("_row").to_pylist() == [2, 3]
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)
    assert report["tables"]["engagements"]["rows_kept"] == 2


def test_csv_file_errors(tmp_path):
    with pytest.raises(InputFileError, match=r"missing column\(s\) cond"):
        CsvAdapter(MAPPING).read(
            _write(tmp_path / "a.csv", "uid,iid,time,event,cats\n1,2,3,clk,\n"), Quarantine()
        )
    with pytest.raises(InputFileError, match="file is empty"):
        CsvAdapter(MAPPING).read(_write(tmp_path / "b.csv", ""), Quarantine())
    with pytest.raises(InputFileError, match="file not found"):
        CsvAdapter(MAPPING).read(tmp_path / "none.csv", Quarantine())
    (tmp_path / "c.csv").write_bytes(b"\xff\xfeuid,iid,time\n1,1,2\n")
    with pytest.raises(InputFileError, match="not utf-8 text"):
        CsvAdapter(ColumnMapping(user="uid", item="iid", ts="time")).read(
            tmp_path / "c.csv", Quarantine()
        )


def _parquet_log(path: Path, start: int = 0) -> Path:
    table = pa.table(
        {
            "uid": pa.array([1, 1, 2], pa.int32()),
            "iid": pa.array([10 + start, 11, 10], pa.int64()),
            "time": pa.array(
                [dt.datetime(2023, 11, 14, 22, 13, 20 + i) for i in range(3)], pa.timestamp("ms")
            ),
            "event": pa.array(["clk", "fav", "clk"]).dictionary_encode(),
            "cond": pa.array([5, None, 6], pa.int64()),
            "cats": pa.array([[5, 6], None, [6, 7]], pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, path)
    return path


def test_parquet_types_rows_and_derived_items(tmp_path):
    q = Quarantine()
    raw = ParquetAdapter(MAPPING, batch_rows=2).read(_parquet_log(tmp_path / "log.parquet"), q)

    eng = _table(raw.engagements)
    assert eng.column("user_id").type == pa.int64()
    assert eng.column("ts").to_pylist() == [T, T + 1, T + 2]
    assert eng.column("action").to_pylist() == ["click", "save", "click"]
    assert eng.column("source_topic").to_pylist() == ["5", None, "6"]
    assert eng.column("_row").to_pylist() == [0, 1, 2]  # 0-based record index

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == [10, 11]
    assert [sorted(t) for t in items.column("topics").to_pylist()] == [["5", "6", "7"], []]

    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)
    assert report["tables"]["engagements"]["rows_kept"] == 3
    assert report["counts"]["topics"] == 3


def test_parquet_shards_share_one_item_table(tmp_path):
    shards = tmp_path / "log"
    shards.mkdir()
    _parquet_log(shards / "part-0.parquet")
    _parquet_log(shards / "part-1.parquet", start=10)  # item 10 again in both, item 20 new
    raw = ParquetAdapter(MAPPING).read(shards, Quarantine())
    items = _table(raw.items)
    assert sorted(items.column("item_id").to_pylist()) == [10, 11, 20]
    assert items.column("_file").to_pylist()[-1].endswith("part-1.parquet")
    assert _table(raw.engagements).num_rows == 6


def test_parquet_file_errors(tmp_path):
    bad = tmp_path / "not.parquet"
    bad.write_text("uid,iid\n")
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        ParquetAdapter(MAPPING).read(bad, Quarantine())
    pq.write_table(pa.table({"uid": [1], "iid": [2]}), tmp_path / "narrow.parquet")
    with pytest.raises(InputFileError, match=r"missing column\(s\) time, event, cond, cats"):
        ParquetAdapter(MAPPING).read(tmp_path / "narrow.parquet", Quarantine())
    empty = _parquet_log(tmp_path / "full.parquet")
    pq.write_table(pq.read_table(empty).slice(0, 0), tmp_path / "empty.parquet")
    with pytest.raises(InputFileError, match="has no rows"):
        ParquetAdapter(MAPPING).read(tmp_path / "empty.parquet", Quarantine())
    with pytest.raises(InputFileError, match="file not found"):
        ParquetAdapter(MAPPING).read(tmp_path / "absent.parquet", Quarantine())


def test_mapping_file_and_make_adapter(tmp_path):
    _write(tmp_path / "log.csv", LOG)
    _write(tmp_path / "items.csv", "iid,cats\n10,a\n11,b\n12,\n")
    toml = _write(
        tmp_path / "mapping.toml",
        'name = "shop"\nuser = "uid"\nitem = "iid"\nts = "time"\naction = "event"\n'
        'item_topics = "cats"\nitems_file = "items.csv"\n\n'
        '[action_map]\nclk = "click"\nfav = "save"\n',
    )
    adapter = load_generic_adapter("csv", toml, batch_rows=100)
    assert isinstance(adapter, CsvAdapter)
    assert adapter.name == "shop"
    assert adapter.items_file == tmp_path / "items.csv"
    raw = adapter.read(tmp_path / "log.csv", Quarantine())
    assert _table(raw.items).column("topics").to_pylist() == [["a"], ["b"], []]

    made = make_adapter("parquet", Config(), mapping_file=toml)
    assert isinstance(made, ParquetAdapter)


def test_mapping_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a column mapping file"):
        load_generic_adapter("csv", None, batch_rows=10)
    toml = _write(tmp_path / "m.toml", 'user = "u"\nitme = "i"\nts = "t"\n')
    with pytest.raises(ConfigError) as err:
        load_generic_adapter("csv", toml, batch_rows=10)
    assert "itme = 'i': unknown key" in str(err.value)
    assert "item: missing" in str(err.value)
    toml = _write(tmp_path / "n.toml", 'user = "u"\nitem = "i"\nts = "t"\ndelimiter = ";;"\n')
    with pytest.raises(ConfigError, match=r"(?s)n\.toml.*delimiter = ';;'"):
        load_generic_adapter("csv", toml, batch_rows=10)
    with pytest.raises(ConfigError, match="file not found"):
        load_generic_adapter("csv", tmp_path / "absent.toml", batch_rows=10)
