"""Parquet sources as other tools write them: float ids, unsigned ids, lists, bytes, damage."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters.generic import ColumnMapping, ParquetAdapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.errors import InputFileError

T0 = 1_600_000_000
MAPPING = ColumnMapping(user="u", item="i", ts="t", item_topics="cats", integer_ids=True)


def _write(path: Path, **columns) -> Path:
    n = len(next(iter(columns.values())))
    base = {
        "u": pa.array(range(1, n + 1), pa.int64()),
        "i": [10] * n,
        "t": [T0 + k for k in range(n)],
    }
    base["cats"] = pa.array([[1]] * n, pa.list_(pa.int64()))
    pq.write_table(pa.table({**base, **columns}), path)
    return path


def _prepare(source: Path, tmp_path: Path, mapping: ColumnMapping = MAPPING):
    q = Quarantine()
    raw = ParquetAdapter(mapping, batch_rows=2).read(source, q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)
    return report, pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()


def test_float_ids_as_pandas_writes_nullable_ints(tmp_path):
    # pandas stores an integer column with a missing value as float64.
    users = pa.array([1.0, 2.0, None, 3.5, float("nan"), 4.0], pa.float64())
    source = _write(tmp_path / "log.parquet", u=users)
    report, rows = _prepare(source, tmp_path)
    assert report["tables"]["engagements"]["rows_kept"] == 3  # users 1, 2 and 4
    assert report["counts"]["users"] == 3
    bad = {r["row"]: (r["column"], r["rule"], r["value"]) for r in rows}
    assert sorted(bad) == [2, 3, 4]
    assert bad[2][:2] == ("user_id", "missing value")
    assert bad[3][0] == "user_id"
    assert bad[3][1].startswith("not an integer id")
    assert bad[3][2] == "3.5"
    assert bad[4][1].startswith("not an integer id")
    assert bad[4][2] == "nan"
    assert {r["source_file"] for r in rows} == {str(source)}


def test_unsigned_ids_in_range_are_read_and_beyond_int64_refused(tmp_path):
    ok = _write(tmp_path / "ok.parquet", u=pa.array([1, 2**63 - 1], pa.uint64()))
    report, _ = _prepare(ok, tmp_path)
    assert report["tables"]["engagements"]["rows_kept"] == 2

    big = _write(tmp_path / "big.parquet", u=pa.array([1, 2, 3, 2**63 + 5], pa.uint64()))
    with pytest.raises(InputFileError) as err:
        _prepare(big, tmp_path / "again")
    message = str(err.value)
    assert message.startswith(str(big))
    assert "column 'u', record 3: 9223372036854775813 is beyond the int64 range" in message


@pytest.mark.parametrize("column", ["u", "i", "t"])
def test_a_list_column_where_one_value_belongs_is_refused_by_file_and_column(tmp_path, column):
    source = _write(
        tmp_path / "log.parquet", **{column: pa.array([[1], [2]], pa.list_(pa.int64()))}
    )
    with pytest.raises(InputFileError) as err:
        _prepare(source, tmp_path)
    assert str(err.value).startswith(f"{source}: column {column!r} holds lists")
    assert "only item topics may be a list" in str(err.value)


def test_a_struct_column_is_refused_by_file_and_column(tmp_path):
    source = _write(tmp_path / "log.parquet", t=pa.array([{"s": 1}, {"s": 2}]))
    with pytest.raises(InputFileError, match=r"log\.parquet: column 't' holds struct<s: int64>"):
        _prepare(source, tmp_path)


def test_topic_lists_of_every_list_kind_and_text_bytes_are_read(tmp_path):
    source = _write(
        tmp_path / "log.parquet",
        u=pa.array([b"7", b"8"], pa.binary()),
        cats=pa.array([[1, 2], [2, 3]], pa.list_(pa.int64(), 2)),  # fixed-size lists
    )
    report, rows = _prepare(source, tmp_path)
    assert rows == []
    assert report["counts"] == {
        "users": 2,
        "items": 1,
        "engagements": 2,
        "topics": 3,
        "user_topics": 0,
    }
    large = _write(tmp_path / "large.parquet", cats=pa.array([["5"]], pa.large_list(pa.string())))
    report, _ = _prepare(large, tmp_path / "large")
    assert report["counts"]["topics"] == 1


def test_bytes_that_are_not_text_are_refused_by_file_and_column(tmp_path):
    source = _write(tmp_path / "log.parquet", u=pa.array([b"7", b"\xff\xfe"], pa.binary()))
    with pytest.raises(InputFileError, match=r"log\.parquet: column 'u' holds bytes that are not"):
        _prepare(source, tmp_path)


def test_a_damaged_page_is_refused_by_file(tmp_path):
    n = 20_000
    source = tmp_path / "log.parquet"
    table = pa.table(
        {
            "u": np.arange(n),
            "i": np.arange(n) % 50,
            "t": T0 + np.arange(n),
            "cats": pa.array([[1]] * n, pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, source, compression="snappy")
    data = bytearray(source.read_bytes())
    data[2000:2400] = bytes(b ^ 0xFF for b in data[2000:2400])  # inside the first data page
    source.write_bytes(bytes(data))
    with pytest.raises(InputFileError, match=r"log\.parquet: is damaged"):
        _prepare(source, tmp_path)
