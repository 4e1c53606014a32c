"""MovieLens adapter: three layouts, genres as topics, every defect reported."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters.movielens import MovieLensAdapter, detect_layout
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.errors import InputFileError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

MOVIES_CSV = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children
2,"Heat, The (1995)",Action|Crime
3,Nothing (2001),(no genres listed)
"""

RATINGS_CSV = """userId,movieId,rating,timestamp
1,1,4.0,964982703
1,2,2.5,964982704
1,3,abc,964982705
2,1,3.5,964982706
2,2,nan,964982707
2,3,5"""  # the last line is truncated (no newline, too few fields)


def _write(path: Path, text: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


def _table(stream) -> pa.Table:
    return pa.Table.from_batches(list(stream()))


def _csv_release(root: Path) -> Path:
    _write(root / "movies.csv", MOVIES_CSV)
    _write(root / "ratings.csv", RATINGS_CSV)
    return root


def test_csv_layout_genres_actions_and_defects(tmp_path):
    source = _csv_release(tmp_path / "ml")
    q = Quarantine()
    raw = MovieLensAdapter(rating_threshold=3.5, batch_rows=2).read(source, q)

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == ["1", "2", "3"]
    assert items.column("topics").to_pylist() == [
        ["Adventure", "Animation", "Children"],
        ["Action", "Crime"],
        [],  # "(no genres listed)" is not a topic
    ]
    assert any(n.startswith("1 movie(s) have no genre") for n in raw.notes)
    assert any("user_topics is empty" in n for n in raw.notes)

    eng = _table(raw.engagements)
    assert eng.column("action").to_pylist() == ["rate", "rate_low", "rate"]
    assert eng.column("_row").to_pylist() == [2, 3, 5]
    assert eng.column("source_topic").null_count == eng.num_rows
    assert q.by_rule("engagements") == {
        "rating: rating is not a number": 2,
        "*: truncated final line": 1,
    }
    bad = q.to_table().to_pylist()
    assert {(r["row"], r["value"]) for r in bad if r["column"] == "rating"} == {
        (4, "abc"),
        (6, "nan"),
    }


def test_csv_layout_through_prepare_accounts_for_every_row(tmp_path):
    source = _csv_release(tmp_path / "ml")
    q = Quarantine()
    raw = MovieLensAdapter(rating_threshold=0.0, batch_rows=100).read(source, q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)

    eng = report["tables"]["engagements"]
    assert eng["rows_in"] == 6  # every data line of ratings.csv
    assert eng["rows_kept"] == 3
    assert eng["rows_in"] == eng["rows_kept"] + eng["rows_quarantined"]
    assert report["tables"]["items"]["rows_kept"] == 3
    assert any("no genre" in n for n in report["notes"])
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet")
    assert set(quarantine.column("rule").to_pylist()) == {
        "rating is not a number",
        "truncated final line",
    }


def test_undecodable_and_wrong_field_count_are_quarantined(tmp_path):
    source = tmp_path / "ml"
    _write(source / "movies.csv", MOVIES_CSV)
    _write(
        source / "ratings.csv",
        b"userId,movieId,rating,timestamp\n"
        b"1,1,4.0,10\n"
        b"1,2,\xff4.0,11\n"  # not UTF-8
        b"1,3,4.0,12,extra\n"
        b"2,1,4.0,13\n",
    )
    q = Quarantine()
    raw = MovieLensAdapter(batch_rows=10).read(source, q)
    assert _table(raw.engagements).num_rows == 2
    assert q.by_rule("engagements") == {
        "*: undecodable text": 1,
        "*: wrong number of fields (expected 4, got 5)": 1,
    }
    assert q.rows_in("engagements") == 2  # rejected before validation, counted as read


def test_ml1m_dat_layout_with_double_colon_and_latin1(tmp_path):
    source = tmp_path / "ml-1m"
    _write(
        source / "movies.dat",
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Café Society (1995)::Drama\n"
        "3::Broken::Drama::Extra\n",
        encoding="latin-1",
    )
    _write(source / "ratings.dat", "1::1::5::978300760\n1::2::1::978302109\n2::1::4")
    q = Quarantine()
    raw = MovieLensAdapter(rating_threshold=3.0, batch_rows=10).read(source, q)

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == ["1", "2"]
    assert items.column("topics").to_pylist()[0] == ["Animation", "Children's", "Comedy"]
    eng = _table(raw.engagements)
    assert eng.column("ts").to_pylist() == ["978300760", "978302109"]
    assert eng.column("action").to_pylist() == ["rate", "rate_low"]
    assert q.by_rule("items") == {"*: wrong number of fields (expected 3, got 4)": 1}
    assert q.by_rule("engagements") == {"*: truncated final line": 1}
    assert "layout: ml-1m" in raw.notes[0]


def test_ml100k_layout_genre_flags(tmp_path):
    source = tmp_path / "ml-100k"
    flags_toy = ["0"] * 19
    flags_toy[3] = flags_toy[4] = "1"  # Animation, Children's
    flags_unknown = ["1"] + ["0"] * 18
    flags_bad = ["0"] * 18 + ["x"]
    lines = [
        "|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://x", *flags_toy]),
        "|".join(["2", "Mystère (1990)", "", "", "", *flags_unknown]),
        "|".join(["3", "Bad flags", "", "", "", *flags_bad]),
    ]
    _write(source / "u.item", "\n".join(lines) + "\n", encoding="latin-1")
    _write(source / "u.data", "1\t1\t5\t881250949\n1\t2\t2\t881250950\n")
    q = Quarantine()
    raw = MovieLensAdapter(rating_threshold=3.0, batch_rows=10).read(source, q)

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == ["1", "2"]
    assert items.column("topics").to_pylist() == [["Animation", "Children's"], []]
    assert q.by_rule("items") == {"Western: genre flag is not 0 or 1": 1}
    assert any(n.startswith("1 movie(s) have no genre") for n in raw.notes)
    assert _table(raw.engagements).column("action").to_pylist() == ["rate", "rate_low"]


def test_directory_without_a_layout_names_what_was_expected(tmp_path):
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(InputFileError, match=r"holds no MovieLens ratings file.*ratings\.csv"):
        detect_layout(tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        MovieLensAdapter().read(tmp_path / "absent", Quarantine())


def test_ratings_without_movies_file(tmp_path):
    _write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,1\n")
    with pytest.raises(InputFileError, match=r"has ratings\.csv but no movies\.csv"):
        MovieLensAdapter().read(tmp_path, Quarantine())


def test_missing_column_fails_at_read(tmp_path):
    _write(tmp_path / "movies.csv", MOVIES_CSV)
    _write(tmp_path / "ratings.csv", "userId,movieId,score,timestamp\n1,1,4,1\n")
    with pytest.raises(InputFileError, match=r"ratings\.csv: missing column\(s\) rating"):
        MovieLensAdapter().read(tmp_path, Quarantine())


@pytest.mark.parametrize("content", ["", "userId,movieId,rating,timestamp\n"])
def test_empty_ratings_file_fails_at_read(tmp_path, content):
    _write(tmp_path / "movies.csv", MOVIES_CSV)
    _write(tmp_path / "ratings.csv", content)
    with pytest.raises(InputFileError, match=r"ratings\.csv: (file is empty|has a header but no)"):
        MovieLensAdapter().read(tmp_path, Quarantine())


@pytest.mark.shared_data
def test_shared_ml_latest_small(tmp_path):
    source = SHARED / "ml-latest-small"
    if not source.is_dir():
        pytest.skip(f"{source} is not present")
    q = Quarantine()
    raw = MovieLensAdapter(rating_threshold=3.5, batch_rows=50_000).read(source, q)
    assert "34 movie(s) have no genre ('(no genres listed)' or 'unknown'): " in raw.notes[1]
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)

    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    assert report["tables"]["engagements"]["rows_in"] == 100_836
    assert report["tables"]["items"]["rows_in"] == 9_742
    assert report["counts"]["users"] == 610
    assert report["counts"]["topics"] == 19  # 20 genres minus "(no genres listed)"
    assert any("no genre" in n for n in report["notes"])
