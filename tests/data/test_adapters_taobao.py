"""Taobao UserBehavior adapter: behaviours mapped, items derived, the window enforced."""

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters.taobao import WINDOW, TaobaoAdapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.errors import InputFileError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

T = 1_511_600_000  # 2017-11-25, inside the window

LOG = (
    f"1,100,7,pv,{T}\n"  # line 1
    f"1,101,8,cart,{T + 1}\n"
    f"1,100,9,fav,{T + 2}\n"  # item 100 seen under a second category
    f"2,102,8,buy,{T + 3}\n"
    f"2,101,8,zap,{T + 4}\n"  # line 5: unknown behaviour
    f"2,103,8,pv,{WINDOW[1]}\n"  # line 6: the first second after the window
    f"2,104,8,pv,{T + 5},extra\n"  # line 7: wrong field count
).encode() + (
    f"3,105,8,pv,{T + 6}\n".encode().replace(b"pv", b"p\xffv")  # line 8: not UTF-8
    + b"3,106,8,pv"  # line 9: truncated final line
)


def _table(stream) -> pa.Table:
    return pa.Table.from_batches(list(stream()))


def _log(tmp_path: Path, content: bytes = LOG) -> Path:
    path = tmp_path / "UserBehavior.csv"
    path.write_bytes(content)
    return path


def test_window_is_the_documented_china_time_days():
    china = dt.timezone(dt.timedelta(hours=8))
    assert dt.datetime.fromtimestamp(WINDOW[0], china) == dt.datetime(2017, 11, 25, tzinfo=china)
    assert WINDOW[1] - WINDOW[0] == 9 * 86_400  # 25 November to 3 December inclusive


def test_raw_tables(tmp_path):
    q = Quarantine()
    raw = TaobaoAdapter(batch_rows=2).read(_log(tmp_path), q)
    assert raw.ts_window == WINDOW

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == ["100", "101", "102", "103"]
    assert items.column("topics").to_pylist() == [["7", "9"], ["8"], ["8"], ["8"]]
    assert items.column("_row").to_pylist() == [1, 2, 4, 6]
    assert q.rows_in("items") == 0  # the items pass does not report the log's defects

    eng = _table(raw.engagements)
    assert eng.column("action").to_pylist() == [
        "view",
        "cart",
        "favorite",
        "purchase",
        "zap",  # passed through for validation to reject
        "view",
    ]
    assert q.by_rule("engagements") == {
        "*: wrong number of fields (expected 5, got 6)": 1,
        "*: undecodable text": 1,
        "*: truncated final line": 1,
    }


def test_through_prepare(tmp_path):
    q = Quarantine()
    raw = TaobaoAdapter(batch_rows=100).read(_log(tmp_path), q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)

    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    eng = report["tables"]["engagements"]
    assert eng["rows_in"] == 9  # every line, counted once
    assert eng["rows_kept"] == 4
    assert report["tables"]["items"]["rows_in"] == 4  # structural defects not counted twice
    rules = {
        r["row"]: r["rule"]
        for r in pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    }
    assert rules[5] == "unknown action kind"
    assert "span" in rules[6] or "window" in rules[6]
    assert rules[7].startswith("wrong number of fields")
    assert rules[8] == "undecodable text"
    assert rules[9] == "truncated final line"


def test_directory_source_and_file_errors(tmp_path):
    _log(tmp_path)
    raw = TaobaoAdapter().read(tmp_path, Quarantine())
    assert raw.name == "taobao"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match=r"has no UserBehavior\.csv"):
        TaobaoAdapter().read(tmp_path / "empty", Quarantine())
    with pytest.raises(InputFileError, match="file is empty"):
        TaobaoAdapter().read(_log(tmp_path, b""), Quarantine())
    with pytest.raises(InputFileError, match="file not found"):
        TaobaoAdapter().read(tmp_path / "missing.csv", Quarantine())


@pytest.mark.shared_data
def test_shared_head(tmp_path):
    source = SHARED / "taobao-userbehavior-head"
    if not source.is_dir():
        pytest.skip(f"{source} is not present")
    q = Quarantine()
    raw = TaobaoAdapter(batch_rows=50_000).read(source, q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)

    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    eng = report["tables"]["engagements"]
    assert eng["rows_in"] == 84_476
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    truncated = [r for r in quarantine if r["rule"] == "truncated final line"]
    assert [(r["row"], r["value"]) for r in truncated] == [(84_476, "100370,1968385,1875258,pv")]
    outside = [r for r in quarantine if r["column"] == "ts"]
    assert len(outside) == 35  # the rows outside 2017-11-25 .. 12-03 (China time)
    assert eng["rows_kept"] == 84_476 - 36
    assert report["counts"]["users"] == 815
    assert report["counts"]["topics"] == 2_914
