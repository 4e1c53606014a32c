"""Last.fm HetRec adapter: tagging events conditioned on their tag, tags as followed topics."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters.lastfm import LastfmAdapter, iso_date
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.errors import InputFileError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

ARTISTS = "id\tname\turl\tpictureURL\n1\tMALICE MIZER\thttp://a\thttp://p\n2\tDiary\thttp://b\t\n"
TAGS = "tagID\ttagValue\n13\tmetal\n15\trock fran\xe7ais\n"
HEADER = "userID\tartistID\ttagID\tday\tmonth\tyear\n"
TAGGINGS = (
    HEADER
    + "2\t1\t13\t1\t4\t2009\n"  # line 2
    + "2\t2\t13\t1\t5\t2008\n"  # line 3: user 2 first used tag 13 here
    + "2\t1\t15\t1\t9\t1956\n"  # line 4: bogus year, not a first use (line 5 is)
    + "2\t2\t15\t1\t6\t2010\n"  # line 5
    + "3\t1\t15\t30\t2\t2009\n"  # line 6: 30 February
    + "3\t99\t13\t1\t1\t2010\n"  # line 7: artist 99 is not in artists.dat
    + "3\t1\t13\t1\t1\t2010\textra\n"  # line 8: wrong field count
    + "4\t2\t13\t1"  # line 9: truncated final line
)


def _release(root: Path, taggings: str = TAGGINGS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "artists.dat").write_bytes(ARTISTS.encode("latin-1"))
    (root / "tags.dat").write_bytes(TAGS.encode("latin-1"))
    (root / "user_taggedartists.dat").write_bytes(taggings.encode("latin-1"))
    (root / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t1\t10\n")
    return root


def _table(stream) -> pa.Table:
    return pa.Table.from_batches(list(stream()))


def test_iso_date_spells_out_impossible_dates():
    assert iso_date("1", "4", "2009") == "2009-04-01"
    assert iso_date("1", "9", "1956") == "1956-09-01"  # a real date; validation judges the span
    assert iso_date("30", "2", "2009") == "day=30 month=2 year=2009"
    assert iso_date("1", "13", "2009") == "day=1 month=13 year=2009"
    assert iso_date("x", "1", "2009") == "day=x month=1 year=2009"
    assert iso_date(" 5", "6", "2010") == "2010-06-05"
    assert iso_date("29", "2", "2008") == "2008-02-29"  # a leap day
    assert iso_date("29", "2", "2009") == "day=29 month=2 year=2009"


def test_raw_tables(tmp_path):
    q = Quarantine()
    raw = LastfmAdapter(batch_rows=3).read(_release(tmp_path / "lfm"), q)

    eng = _table(raw.engagements)
    assert eng.column("user_id").to_pylist() == ["2", "2", "2", "2", "3", "3"]
    assert eng.column("ts").to_pylist()[:2] == ["2009-04-01", "2008-05-01"]
    assert eng.column("ts").to_pylist()[4] == "day=30 month=2 year=2009"
    assert eng.column("source_topic").to_pylist() == ["13", "13", "15", "15", "15", "13"]
    assert set(eng.column("action").to_pylist()) == {"tag"}
    assert q.by_rule("engagements") == {
        "*: wrong number of fields (expected 6, got 7)": 1,
        "*: truncated final line": 1,
    }

    items = _table(raw.items)
    assert items.column("item_id").to_pylist() == ["1", "2"]
    assert [sorted(t) for t in items.column("topics").to_pylist()] == [["13", "15"], ["13", "15"]]

    follows = _table(raw.user_topics).to_pylist()
    first = {(r["user_id"], r["topic"]): (r["followed_at"], r["_row"]) for r in follows}
    assert first == {
        ("2", "13"): ("2008-05-01", 3),
        ("2", "15"): ("2010-06-01", 5),  # the 1956 row is not a plausible first use
        ("3", "15"): ("day=30 month=2 year=2009", 6),  # no other use: validation rejects it
        ("3", "13"): ("2010-01-01", 7),
    }
    assert all(r["unfollowed_at"] is None for r in follows)

    assert raw.topic_names == {"13": "metal", "15": "rock français"}  # Latin-1 decoded
    assert any("user_artists.dat is not read" in n for n in raw.notes)


def test_through_prepare(tmp_path):
    q = Quarantine()
    raw = LastfmAdapter(batch_rows=100).read(_release(tmp_path / "lfm"), q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)

    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    eng = report["tables"]["engagements"]
    assert eng["rows_in"] == 8  # every data line of the tagging file
    rules = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    by_row = {(r["table"], r["row"]): r["rule"] for r in rules}
    assert by_row[("engagements", 6)].startswith("not a number or date")
    assert by_row[("engagements", 7)] == "item_id not in the item table"
    assert by_row[("engagements", 9)] == "truncated final line"
    assert ("engagements", 4) in by_row  # 1956: negative timestamp or outside the span
    assert by_row[("user_topics", 6)].startswith("not a number or date")
    assert report["tables"]["user_topics"]["rows_kept"] == 3


def test_two_tags_on_one_artist_on_one_day_are_two_engagements(tmp_path):
    taggings = HEADER + "2\t1\t13\t1\t4\t2009\n2\t1\t15\t1\t4\t2009\n"
    q = Quarantine()
    raw = LastfmAdapter().read(_release(tmp_path / "lfm", taggings), q)
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)
    assert report["tables"]["engagements"]["rows_kept"] == 2


def test_missing_files_and_columns(tmp_path):
    with pytest.raises(InputFileError, match=r"has no user_taggedartists\.dat or artists\.dat"):
        LastfmAdapter().read(tmp_path, Quarantine())
    root = _release(tmp_path / "lfm", "userID\tartistID\ttagID\tday\tmonth\n2\t1\t13\t1\t4\n")
    with pytest.raises(InputFileError, match=r"missing column\(s\) year"):
        LastfmAdapter().read(root, Quarantine())
    root = _release(tmp_path / "empty", "")
    with pytest.raises(InputFileError, match="file is empty"):
        LastfmAdapter().read(root, Quarantine())


def test_tags_file_is_optional(tmp_path):
    root = _release(tmp_path / "lfm")
    (root / "tags.dat").unlink()
    raw = LastfmAdapter().read(root, Quarantine())
    assert raw.topic_names == {}
    assert any("no tags.dat" in n for n in raw.notes)


@pytest.mark.shared_data
def test_shared_hetrec(tmp_path):
    source = SHARED / "hetrec2011-lastfm-2k"
    if not source.is_dir():
        pytest.skip(f"{source} is not present")
    q = Quarantine()
    raw = LastfmAdapter(batch_rows=50_000).read(source, q)
    assert raw.topic_names["4571"] == "rock français"  # tags.dat is Latin-1
    assert raw.topic_names["7982"] == "fußball"
    report = prepare(raw, tmp_path / "out", config=DataConfig(), quarantine=q)

    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    eng = report["tables"]["engagements"]
    assert eng["rows_in"] == 186_479
    structural = ("undecodable text", "truncated final line", "wrong number of fields", "blank")
    assert not any(s in rule for rule in eng["quarantined_by_rule"] for s in structural)
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    lines = (source / "user_taggedartists.dat").read_text(encoding="latin-1").splitlines()
    bogus = {i for i, line in enumerate(lines, 1) if i > 1 and int(line.split("\t")[5]) < 2005}
    assert len(bogus) == 5  # years 1956, 1957 and 1979
    bad_ts = {r["row"] for r in quarantine if r["table"] == "engagements" and r["column"] == "ts"}
    assert bad_ts == bogus  # each bogus year is quarantined, and nothing else for its time
    assert report["counts"]["items"] == 17_632
