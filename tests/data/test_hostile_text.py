"""Hostile text input: a bad row costs itself only; a bad file gets a message, not a traceback."""

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters.generic import ColumnMapping, CsvAdapter, load_generic_adapter
from multiembed.data.adapters.movielens import MovieLensAdapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import UNCLOSED_QUOTE, read_delimited
from multiembed.errors import ConfigError, DataError, InputFileError

T = 1_700_000_000
COLS = ["u", "i", "t"]
MAPPING = ColumnMapping(user="u", item="i", ts="t", integer_ids=True)


def _read(path: Path, q: Quarantine, columns=COLS, **kw) -> pa.Table:
    batches = list(read_delimited(path, table="engagements", quarantine=q, columns=columns, **kw))
    return pa.Table.from_batches(batches) if batches else pa.table({})


def _prepare(raw, tmp_path: Path, q: Quarantine) -> dict:
    return prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)


def _log(n: int) -> list[str]:
    return [f"{u},{u % 7},{T + u}" for u in range(n)]


# -- an unclosed quote costs its own line only ------------------------------------


def test_unclosed_quote_is_quarantined_at_its_own_line_and_later_rows_are_read(tmp_path):
    rows = _log(1000)
    rows[499] = f'"499,3,{T + 499}'  # data row 500, line 501
    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n" + "\n".join(rows) + "\n")
    q = Quarantine()
    report = _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)

    eng = report["tables"]["engagements"]
    assert (eng["rows_in"], eng["rows_kept"], eng["rows_quarantined"]) == (1000, 999, 1)
    (bad,) = q.to_table().to_pylist()
    assert (bad["row"], bad["column"], bad["rule"]) == (501, "*", UNCLOSED_QUOTE)
    assert bad["value"] == rows[499]


@pytest.mark.parametrize("ending", ["\n", ""])
def test_unclosed_quote_on_the_last_line(tmp_path, ending):
    path = tmp_path / "log.csv"
    path.write_text(f'u,i,t\n1,2,3\n4,5,"6{ending}')
    q = Quarantine()
    assert _read(path, q).column("u").to_pylist() == ["1"]
    assert [(r["row"], r["rule"]) for r in q.to_table().to_pylist()] == [(3, UNCLOSED_QUOTE)]


def test_well_formed_quotes_still_read(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text('u,i,t\n"1","a, b",3\n4,"say ""hi""",6\n7,ab"c,9\n')
    q = Quarantine()
    table = _read(path, q)
    assert table.column("i").to_pylist() == ["a, b", 'say "hi"', 'ab"c']
    assert table.column("_row").to_pylist() == [2, 3, 4]
    assert q.rows_quarantined("engagements") == 0


def test_movies_csv_with_an_unclosed_quote_loses_one_movie_and_its_ratings_only(tmp_path):
    source = tmp_path / "ml"
    source.mkdir()
    movies = [f'{m},"Movie {m}, The (1999)",Drama' for m in range(1, 21)]
    movies[2] = '3,"Movie 3, The (1999),Drama|Comedy'
    (source / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    ratings = [f"{u},{1 + u % 20},4.0,{T + u}" for u in range(500)]
    (source / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(ratings))
    q = Quarantine()
    report = _prepare(MovieLensAdapter().read(source, q), tmp_path, q)

    items = report["tables"]["items"]
    assert (items["rows_in"], items["rows_kept"]) == (20, 19)
    by_rule = report["tables"]["engagements"]["quarantined_by_rule"]
    assert by_rule == {"item_id: item_id not in the item table": 25}  # movie 3's ratings
    bad_movie = q.to_table().filter(pa.compute.equal(q.to_table().column("table"), "items"))
    assert bad_movie.column("row").to_pylist() == [4]


def test_header_with_an_unclosed_quote_is_a_file_error(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text('u,"i,t\n1,2,3\n')
    with pytest.raises(InputFileError, match=r"log\.csv: header row: unclosed quote"):
        _read(path, Quarantine())


# -- line endings and big fields ----------------------------------------------------


@pytest.mark.parametrize("newline", ["\r", "\r\n", "\n"])
def test_every_line_ending_reads_the_same_rows(tmp_path, newline):
    path = tmp_path / "log.csv"
    path.write_bytes(newline.join(["u,i,t", *_log(5), '7,"x,y",9']).encode() + b"\r")
    q = Quarantine()
    table = _read(path, q)
    assert table.column("u").to_pylist() == ["0", "1", "2", "3", "4", "7"]
    assert table.column("i").to_pylist()[-1] == "x,y"
    assert table.column("_row").to_pylist() == [2, 3, 4, 5, 6, 7]
    assert q.rows_quarantined("engagements") == 0


def test_cr_only_file_whose_first_line_is_longer_than_the_probe(tmp_path):
    path = tmp_path / "log.csv"
    wide = "x" * 100_000  # the first line end lies past the first 64 KB read
    path.write_bytes(f"u,i,t,{wide}\r1,2,3,4\r5,6,7,8\r".encode())
    q = Quarantine()
    assert _read(path, q).column("_row").to_pylist() == [2, 3]
    assert q.rows_quarantined("engagements") == 0


def test_cr_only_log_through_prepare(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes("\r".join(["u,i,t", *_log(20)]).encode() + b"\r")
    q = Quarantine()
    report = _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)
    assert report["tables"]["engagements"]["rows_kept"] == 20


@pytest.mark.parametrize("quoted", [True, False])
def test_field_over_csv_size_cap_is_read(tmp_path, quoted):
    big = "a" * (csv.field_size_limit() + 10)
    cell = f'"{big}, b"' if quoted else big
    path = tmp_path / "log.csv"
    path.write_text(f"u,i,t\n1,{cell},3\n4,5,6\n")
    q = Quarantine()
    table = _read(path, q)
    assert table.column("i").to_pylist() == [f"{big}, b" if quoted else big, "5"]
    assert q.rows_quarantined("engagements") == 0
    assert csv.field_size_limit() < len(big)  # the cap is lifted for that line only


# -- timestamps and ids -------------------------------------------------------------


def test_all_millisecond_timestamps_fail_with_a_message_naming_milliseconds(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n" + "\n".join(f"{u},{u % 7},{(T + u) * 1000}" for u in range(20)))
    q = Quarantine()
    with pytest.raises(DataError):
        _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)
    assert set(q.by_rule("engagements")) == {
        "ts: timestamp after the year 3000 (milliseconds? expected seconds since 1970)"
    }


def test_a_few_millisecond_timestamps_are_quarantined(tmp_path):
    rows = _log(30)
    rows[4] = f"4,4,{(T + 4) * 1000}"
    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n" + "\n".join(rows))
    q = Quarantine()
    report = _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)
    (rule,) = report["tables"]["engagements"]["quarantined_by_rule"]
    assert "milliseconds" in rule


def test_iso_times_with_z_and_offset_are_kept(tmp_path):
    path = tmp_path / "log.csv"
    rows = [f"{u},{u % 3},2023-11-14T22:13:{u:02d}Z" for u in range(10)]
    rows += [f"{u},{u % 3},2023-11-14T22:13:{u:02d}+00:00" for u in range(10, 20)]
    path.write_text("u,i,t\n" + "\n".join(rows) + "\n")
    q = Quarantine()
    report = _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)
    assert report["tables"]["engagements"]["rows_kept"] == 20
    ts = pq.read_table(tmp_path / "out" / "engagements.parquet").column("ts").to_pylist()
    assert sorted(ts) == list(range(T - 20, T))  # 2023-11-14T22:13:20Z is T


def test_string_ids_point_to_integer_ids_false(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n" + "\n".join(f"user{u},item{u},{T + u}" for u in range(5)))
    q = Quarantine()
    with pytest.raises(DataError):
        _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)
    assert all("integer_ids = false" in rule for rule in q.by_rule("items"))


def test_string_ids_are_read_by_default(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n" + "\n".join(f"user{u},item{u},{T + u}" for u in range(5)))
    q = Quarantine()
    mapping = ColumnMapping(user="u", item="i", ts="t")
    report = _prepare(CsvAdapter(mapping).read(path, q), tmp_path, q)
    assert report["tables"]["engagements"]["rows_kept"] == 5
    users = pq.read_table(tmp_path / "out" / "vocab" / "users.parquet").column("raw")
    assert users.to_pylist() == [f"user{u}" for u in range(5)]


def test_raw_id_minus_one_is_quarantined(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u,i,t\n-1,1,10\n1,-1,11\n" + "\n".join(_log(10)) + "\n")
    q = Quarantine()
    report = _prepare(CsvAdapter(MAPPING).read(path, q), tmp_path, q)
    eng = report["tables"]["engagements"]["quarantined_by_rule"]
    assert eng == {
        "user_id: id -1 is reserved (the service pads with it)": 1,
        "item_id: id -1 is reserved (the service pads with it)": 1,
    }
    users = pq.read_table(tmp_path / "out" / "vocab" / "users.parquet").column(0).to_pylist()
    assert -1 not in users


# -- headers and mapping files ------------------------------------------------------


def test_duplicate_header_column_is_refused_with_file_and_column(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u,i,t,u\n1,2,3,4\n")
    with pytest.raises(InputFileError, match=r"log\.csv: column 'u' is named 2 times.*fields 1, 4"):
        CsvAdapter(MAPPING).read(path, Quarantine())


def test_duplicate_unread_header_column_is_harmless(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("u,i,t,x,x\n1,2,3,4,5\n")
    assert _read(path, Quarantine()).column("u").to_pylist() == ["1"]


def test_duplicate_name_in_a_mapping_header_is_refused():
    with pytest.raises(ConfigError, match=r"header = .*names u more than once"):
        ColumnMapping(user="u", item="i", ts="t", header=("u", "i", "t", "u"))


@pytest.mark.parametrize("encoding", ["base64", "rot13", "hex", "zlib", "utf-16", "utf-99"])
def test_unusable_encoding_in_a_mapping_file_names_the_file_and_key(tmp_path, encoding):
    toml = tmp_path / "shop.toml"
    toml.write_text(f'user = "u"\nitem = "i"\nts = "t"\nencoding = "{encoding}"\n')
    with pytest.raises(ConfigError, match=rf"(?s)shop\.toml.*encoding = '{encoding}'"):
        load_generic_adapter("csv", toml, batch_rows=10)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('header = "u,i,t"', r"header = 'u,i,t': must be a list of column names"),
        ("delimiter = '\"'", r"delimiter = '\"': must not be a quote or a line end"),
        ('delimiter = "\\n"', r"delimiter = '\\n': must not be a quote or a line end"),
    ],
)
def test_mapping_file_value_errors(tmp_path, line, message):
    toml = tmp_path / "shop.toml"
    toml.write_text(f'user = "u"\nitem = "i"\nts = "t"\n{line}\n')
    with pytest.raises(ConfigError, match=message):
        load_generic_adapter("csv", toml, batch_rows=10)


def test_mapping_file_that_is_a_directory(tmp_path):
    (tmp_path / "shop.toml").mkdir()
    with pytest.raises(ConfigError, match=r"(?s)in .*shop\.toml.*cannot be read"):
        load_generic_adapter("csv", tmp_path / "shop.toml", batch_rows=10)
