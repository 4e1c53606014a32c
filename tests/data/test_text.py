"""Delimited text reading: structural defects quarantined, file defects raised."""

from pathlib import Path

import pytest

from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.errors import InputFileError

COLS = ["user", "item", "ts"]


def _read(path: Path, q: Quarantine, **kw):
    return list(read_delimited(path, table="engagements", quarantine=q, columns=COLS, **kw))


def test_rows_carry_file_and_line_numbers(tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts,extra\n1,2,3,x\n4,5,6,y\n")
    q = Quarantine()
    (batch,) = _read(path, q)
    assert batch.column("user").to_pylist() == ["1", "4"]
    assert batch.column("_row").to_pylist() == [2, 3]
    assert batch.column("_file").to_pylist() == [str(path)] * 2


def test_truncated_final_line_is_quarantined(tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"user,item,ts\n1,2,3\n4,5")
    q = Quarantine()
    (batch,) = _read(path, q)
    assert batch.num_rows == 1
    rows = q.to_table().to_pylist()
    assert rows == [
        {
            "table": "engagements",
            "source_file": str(path),
            "row": 3,
            "column": "*",
            "rule": "truncated final line",
            "value": "4,5",
        }
    ]
    assert q.rows_in("engagements") == 1  # the yielded row is counted by validation


def test_wrong_field_count_mid_file_and_blank_line(tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_text("user,item,ts\n1,2\n\n4,5,6\n")
    q = Quarantine()
    (batch,) = _read(path, q)
    assert batch.column("_row").to_pylist() == [4]
    rules = [r["rule"] for r in q.to_table().to_pylist()]
    assert rules == ["wrong number of fields (expected 3, got 2)", "blank line"]


def test_undecodable_line_is_quarantined_with_raw_bytes(tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"user,item,ts\n1,2,3\n4,\xff\xfe,6\n7,8,9\n")
    q = Quarantine()
    (batch,) = _read(path, q)
    assert batch.column("user").to_pylist() == ["1", "7"]
    (row,) = q.to_table().to_pylist()
    assert (row["row"], row["rule"]) == (3, "undecodable text")
    assert "\\xff" in row["value"]


def test_latin1_source_decodes(tmp_path: Path):
    path = tmp_path / "tags.dat"
    path.write_bytes("user\titem\tts\n1\tcaf\xe9\t3\n".encode("latin-1"))
    q = Quarantine()
    (batch,) = _read(path, q, delimiter="\t", encoding="latin-1", quoting=False)
    assert batch.column("item").to_pylist() == ["café"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "file is empty; expected a header row with columns user, item, ts"),
        (b"user,item,ts\n", "has a header but no rows"),
        (b"user,item\n1,2\n", "missing column(s) ts (found: user, item)"),
        ("user,item,ts\n1,2,3\n".encode("utf-16"), "contains NUL bytes"),
        (b"\xff\xfeuser,item,ts\n", "line 1 is not utf-8 text"),
    ],
)
def test_file_level_defects_raise_one_clear_error(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        _read(path, Quarantine())
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_mostly_undecodable_file_is_a_wrong_encoding(tmp_path: Path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"user,item,ts\n" + b"1,caf\xe9,3\n" * 20)
    with pytest.raises(InputFileError, match="is not utf-8 text"):
        _read(path, Quarantine())


def test_missing_file(tmp_path: Path):
    with pytest.raises(InputFileError, match="file not found"):
        _read(tmp_path / "nope.csv", Quarantine())


def test_multi_character_delimiter(tmp_path: Path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::3\n4::5\n7::8::9")
    q = Quarantine()
    (batch,) = _read(path, q, delimiter="::", header=COLS)
    assert batch.column("ts").to_pylist() == ["3", "9"]
    assert batch.column("_row").to_pylist() == [1, 3]
    (row,) = q.to_table().to_pylist()
    assert (row["row"], row["rule"], row["value"]) == (
        2,
        "wrong number of fields (expected 3, got 2)",
        "4::5",
    )
