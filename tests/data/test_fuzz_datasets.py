"""Fuzzing the MovieLens, Last.fm and Taobao adapters with hostile copies of their files.

Each example writes a small release whose files are damaged here and there
(see `hostile_helpers`), reads it with the adapter and prepares it. Nothing may
raise but the library's own errors; every data line is read or quarantined
once; every intact line is read back as written.
"""

import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from multiembed.config import DataConfig
from multiembed.data.adapters.lastfm import LastfmAdapter, iso_date
from multiembed.data.adapters.movielens import ML100K_GENRES, NO_GENRE_LABELS, MovieLensAdapter
from multiembed.data.adapters.taobao import BEHAVIOURS, WINDOW, TaobaoAdapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.errors import DataError, InputFileError
from tests.data.hostile_helpers import Written, check_lines, fuzz, hostile_file, text_field

_NUMBER_RATINGS = ["4.0", "2.5", "5", " 3 ", "1e0", ".5"]
_RATINGS = [*_NUMBER_RATINGS, "abc", "nan", ""]
_GENRES = ["Drama", "Comedy", "Sci-Fi", "(no genres listed)", "unknown", " Horror "]


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    if not batches:
        return pa.table({"_file": pa.array([], pa.string()), "_row": pa.array([], pa.int64())})
    return pa.Table.from_batches(batches)


def _ids(low: int, high: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(low, high).map(str),
        st.sampled_from(["-1", "x", "", " 7 ", "99999999999999999999"]),
    )


def _times() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(WINDOW[0], WINDOW[1] - 1).map(str),
        st.sampled_from(["1512000000000", "2017-11-26T10:00:00Z", "soon", "-4", ""]),
    )


def _prepare(adapter, source: Path, tmp: Path) -> dict | None:
    """prepare's report, or None when it refused the data with a library error."""
    q = Quarantine()
    try:
        report = prepare(adapter.read(source, q), tmp / "out", config=DataConfig(), quarantine=q)
    except (DataError, InputFileError):
        return None
    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    return report


def _draw_file(data, path: Path, rows, *, header, delimiter, quoting, encoding) -> Written:
    return data.draw(
        hostile_file(
            path, rows, header=header, delimiter=delimiter, quoting=quoting, encoding=encoding
        )
    )


# -- MovieLens ----------------------------------------------------------------------


def _genre_topics(genres: str, sep: str = "|") -> list[str]:
    topics = [g.strip() for g in genres.split(sep)]
    return [g for g in topics if g and g not in NO_GENRE_LABELS]


@st.composite
def _movielens_rows(draw: st.DrawFn, layout: str) -> tuple[list[list[str]], list[list[str]]]:
    quoting = layout == "csv"
    title = text_field(
        delimiter="|" if layout == "ml-100k" else "::", quoting=quoting, encoding="latin-1"
    )
    genres = st.lists(st.sampled_from(_GENRES), max_size=3).map("|".join)
    if layout == "ml-100k":
        flags = st.lists(st.sampled_from(["0", "1", "1", "0", "2", ""]), min_size=19, max_size=19)
        movie = st.tuples(_ids(1, 6), title, flags).map(
            lambda t: [t[0], t[1], "01-Jan-1995", "", "http://x", *t[2]]
        )
    else:
        movie = st.tuples(_ids(1, 6), title, genres).map(list)
    rating = st.tuples(_ids(1, 4), _ids(1, 6), st.sampled_from(_RATINGS), _times()).map(list)
    return (
        draw(st.lists(movie, min_size=1, max_size=6)),
        draw(st.lists(rating, min_size=1, max_size=10)),
    )


_LAYOUTS = {  # files, delimiter, quoting, encoding, header rows (None: the file has none)
    "csv": (
        ("movies.csv", "ratings.csv"),
        ",",
        True,
        "utf-8",
        (["movieId", "title", "genres"], ["userId", "movieId", "rating", "timestamp"]),
    ),
    "ml-1m": (("movies.dat", "ratings.dat"), "::", False, "latin-1", (None, None)),
    "ml-100k": (("u.item", "u.data"), None, False, "latin-1", (None, None)),
}


@fuzz(200)
@given(
    layout=st.sampled_from(list(_LAYOUTS)), threshold=st.sampled_from([0.0, 3.5]), data=st.data()
)
def test_movielens(layout, threshold, data):
    (movies_name, ratings_name), delimiter, quoting, encoding, headers = _LAYOUTS[layout]
    movies, ratings = data.draw(_movielens_rows(layout))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ml"
        root.mkdir()
        w_movies = _draw_file(
            data,
            root / movies_name,
            movies,
            header=headers[0],
            delimiter=delimiter or "|",
            quoting=quoting,
            encoding=encoding,
        )
        w_ratings = _draw_file(
            data,
            root / ratings_name,
            ratings,
            header=headers[1],
            delimiter=delimiter or "\t",
            quoting=quoting,
            encoding=encoding,
        )
        adapter = MovieLensAdapter(rating_threshold=threshold, batch_rows=3)
        q = Quarantine()
        try:
            raw = adapter.read(root, q)
            items = _table(list(raw.items()))
            engagements = _table(list(raw.engagements()))
        except InputFileError:
            assert w_movies.may_refuse or w_ratings.may_refuse
            return
        bad_flags = {
            line: "genre flag is not 0 or 1"
            for line, row in w_movies.intact.items()
            if layout == "ml-100k" and any(f not in ("0", "1") for f in row[5:])
        }
        got = check_lines(w_movies, items, q, quoting=quoting, table="items", rejected=bad_flags)
        for line, row in w_movies.intact.items():
            if line in bad_flags:
                continue
            if layout == "ml-100k":
                want = [g for g, f in zip(ML100K_GENRES, row[5:], strict=True) if f == "1"]
                want = [g for g in want if g not in NO_GENRE_LABELS]
            else:
                want = _genre_topics(row[2])
            assert (got[line]["item_id"], got[line]["topics"]) == (row[0], want)
        bad_ratings = {
            line: "rating is not a number"
            for line, row in w_ratings.intact.items()
            if row[2] not in _NUMBER_RATINGS
        }
        got = check_lines(
            w_ratings, engagements, q, quoting=quoting, table="engagements", rejected=bad_ratings
        )
        for line, row in w_ratings.intact.items():
            if line in bad_ratings:
                continue
            action = "rate" if float(row[2]) >= threshold else "rate_low"
            want = [row[0], row[1], row[3], action]
            assert [got[line][k] for k in ("user_id", "item_id", "ts", "action")] == want
        report = _prepare(adapter, root, Path(tmp))
        if report is not None:
            assert report["tables"]["engagements"]["rows_in"] == w_ratings.n_lines
            assert report["tables"]["items"]["rows_in"] == w_movies.n_lines


# -- Last.fm ------------------------------------------------------------------------


@st.composite
def _tagging(draw: st.DrawFn) -> list[str]:
    day = draw(st.one_of(st.integers(1, 31).map(str), st.sampled_from(["0", "x", ""])))
    month = draw(st.one_of(st.integers(1, 12).map(str), st.sampled_from(["13", "02"])))
    year = draw(st.sampled_from(["2009", "2010", "1956", "2x09", "99"]))
    return [draw(_ids(1, 3)), draw(_ids(1, 5)), draw(_ids(10, 13)), day, month, year]


@fuzz(150)
@given(data=st.data())
def test_lastfm(data):
    name = text_field(delimiter="\t", quoting=False, encoding="latin-1")
    artists = data.draw(
        st.lists(
            st.tuples(_ids(1, 5), name).map(lambda t: [t[0], t[1], "http://a", ""]),
            min_size=1,
            max_size=5,
        )
    )
    taggings = data.draw(st.lists(_tagging(), min_size=1, max_size=10))
    tags = data.draw(st.lists(st.tuples(_ids(10, 13), name).map(list), min_size=1, max_size=4))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lfm"
        root.mkdir()
        tsv = {"delimiter": "\t", "quoting": False, "encoding": "latin-1"}
        w_artists = _draw_file(
            data, root / "artists.dat", artists, header=["id", "name", "url", "pictureURL"], **tsv
        )
        w_taggings = _draw_file(
            data,
            root / "user_taggedartists.dat",
            taggings,
            header=["userID", "artistID", "tagID", "day", "month", "year"],
            **tsv,
        )
        w_tags = _draw_file(data, root / "tags.dat", tags, header=["tagID", "tagValue"], **tsv)
        adapter = LastfmAdapter(batch_rows=3)
        q = Quarantine()
        try:
            raw = adapter.read(root, q)
            items = _table(list(raw.items()))
            engagements = _table(list(raw.engagements()))
            list(raw.user_topics())
        except InputFileError:
            assert w_artists.may_refuse or w_taggings.may_refuse or w_tags.may_refuse
            return
        got = check_lines(w_artists, items, q, quoting=False, table="items")
        for line, row in w_artists.intact.items():
            assert got[line]["item_id"] == row[0]
        got = check_lines(w_taggings, engagements, q, quoting=False, table="engagements")
        for line, row in w_taggings.intact.items():
            want = [row[0].strip(), row[1].strip(), row[2].strip(), iso_date(*row[3:])]
            assert [got[line][k] for k in ("user_id", "item_id", "source_topic", "ts")] == want
        report = _prepare(adapter, root, Path(tmp))
        if report is not None:
            assert report["tables"]["engagements"]["rows_in"] == w_taggings.n_lines
            assert report["tables"]["items"]["rows_in"] == w_artists.n_lines


# -- Taobao -------------------------------------------------------------------------


@fuzz(150)
@given(data=st.data())
def test_taobao(data):
    behaviour = st.sampled_from([*BEHAVIOURS, " buy ", "zap", ""])
    row = st.tuples(_ids(1, 4), _ids(100, 105), _ids(1, 3), behaviour, _times()).map(list)
    rows = data.draw(st.lists(row, min_size=1, max_size=12))
    with tempfile.TemporaryDirectory() as tmp:
        w_log = _draw_file(
            data,
            Path(tmp) / "UserBehavior.csv",
            rows,
            header=None,
            delimiter=",",
            quoting=False,
            encoding="utf-8",
        )
        adapter = TaobaoAdapter(batch_rows=3)
        q = Quarantine()
        try:
            raw = adapter.read(w_log.path, q)
            items = _table(list(raw.items()))
            engagements = _table(list(raw.engagements()))
        except InputFileError:
            assert w_log.may_refuse
            return
        got = check_lines(w_log, engagements, q, quoting=False, table="engagements")
        for line, fields in w_log.intact.items():
            want = [
                fields[0],
                fields[1],
                fields[4],
                BEHAVIOURS.get(fields[3].strip(), fields[3].strip()),
            ]
            assert [got[line][k] for k in ("user_id", "item_id", "ts", "action")] == want
        derived = set(items.column("item_id").to_pylist()) if items.num_rows else set()
        assert derived == {r["item_id"].strip() for r in got.values()}
        report = _prepare(adapter, w_log.path, Path(tmp))
        if report is not None:
            assert report["tables"]["engagements"]["rows_in"] == w_log.n_lines
