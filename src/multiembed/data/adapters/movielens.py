"""MovieLens: ratings as engagements, genres as item topics.

Three official layouts are recognised from the files present in the directory:

- `csv` (ml-latest-small, ml-20m, ml-25m): `ratings.csv`
  (userId,movieId,rating,timestamp), `movies.csv` (movieId,title,genres with
  genres `|`-separated), optional `tags.csv`; UTF-8 with a header row.
- `ml-1m` (also ml-10m): `ratings.dat` (UserID::MovieID::Rating::Timestamp) and
  `movies.dat` (MovieID::Title::Genres); `::`-separated, no header, Latin-1.
- `ml-100k`: `u.data` (user, item, rating, timestamp; tab-separated) and
  `u.item` (`|`-separated: id, title, dates, URL and 19 genre flags); Latin-1.

Every rating is an engagement: action `rate` when the rating is at or above
`rating_threshold`, otherwise the negative kind `rate_low`. A rating that is not
a number is quarantined here ("rating is not a number"). MovieLens logs no
condition, so `source_topic` is null, and it has no followed topics, so
`user_topics` is empty. A movie whose only genre is "(no genres listed)" (or
ml-100k's "unknown") gets an empty topic list, and the report says how many.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from multiembed.data._parse import _NUM_RE, _mask
from multiembed.data.adapters._common import (
    drop_topics,
    engagement_batch,
    items_batch,
    probe,
    split_topics,
)
from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.data.validate import _Rows
from multiembed.errors import InputFileError

#: Genre labels that mean "no genre": they never become topics.
NO_GENRE_LABELS = frozenset({"(no genres listed)", "unknown"})

#: The 19 genre flag columns of ml-100k's u.item, in file order (from u.genre).
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
_ML100K_ITEM_HEADER = ("movie id", "title", "release date", "video release date", "url")


_ML1M_RATINGS = ["UserID", "MovieID", "Rating", "Timestamp"]
_ML100K_RATINGS = ["user id", "item id", "rating", "timestamp"]
#: `read_delimited` arguments of each layout's ratings and (csv, ml-1m) movies file.
_RATINGS_FORMAT: dict[str, dict[str, Any]] = {
    "csv": {"columns": ["userId", "movieId", "rating", "timestamp"]},
    "ml-1m": {
        "columns": _ML1M_RATINGS,
        "header": _ML1M_RATINGS,
        "delimiter": "::",
        "encoding": "latin-1",
    },
    "ml-100k": {
        "columns": _ML100K_RATINGS,
        "header": _ML100K_RATINGS,
        "delimiter": "\t",
        "encoding": "latin-1",
        "quoting": False,
    },
}
_MOVIES_FORMAT: dict[str, dict[str, Any]] = {
    "ml-100k": {
        "columns": ["movie id", *ML100K_GENRES],
        "header": [*_ML100K_ITEM_HEADER, *ML100K_GENRES],
        "delimiter": "|",
        "encoding": "latin-1",
        "quoting": False,
    },
    "csv": {"columns": ["movieId", "genres"]},
    "ml-1m": {
        "columns": ["MovieID", "Genres"],
        "header": ["MovieID", "Title", "Genres"],
        "delimiter": "::",
        "encoding": "latin-1",
    },
}

_EXPECTED = (
    "a MovieLens directory with ratings.csv + movies.csv (ml-latest-small, ml-25m), "
    "ratings.dat + movies.dat (ml-1m) or u.data + u.item (ml-100k)"
)


@dataclass(frozen=True)
class MovieLensLayout:
    """Which official layout a directory holds, and its files."""

    name: str
    ratings: Path
    movies: Path
    tags: Path | None = None


def detect_layout(source: Path) -> MovieLensLayout:
    """Recognises the MovieLens layout of directory `source` from the files present.

    Raises:
        InputFileError: `source` is not a directory, or holds none of the
            layouts (the message lists what was expected), or holds a ratings
            file without its movies file.
    """
    if not source.is_dir():
        problem = "not found" if not source.exists() else "is not a directory"
        raise InputFileError(source, problem, expected=_EXPECTED)
    candidates = (
        ("csv", "ratings.csv", "movies.csv"),
        ("ml-1m", "ratings.dat", "movies.dat"),
        ("ml-100k", "u.data", "u.item"),
    )
    for name, ratings, movies in candidates:
        if not (source / ratings).is_file():
            continue
        if not (source / movies).is_file():
            raise InputFileError(
                source, f"has {ratings} but no {movies}", expected=f"{ratings} with {movies}"
            )
        tags = source / "tags.csv" if name == "csv" else source / "tags.dat"
        return MovieLensLayout(
            name, source / ratings, source / movies, tags if tags.is_file() else None
        )
    raise InputFileError(source, "holds no MovieLens ratings file", expected=_EXPECTED)


class MovieLensAdapter:
    """Reads an official MovieLens release (csv, ml-1m or ml-100k layout).

    Args:
        rating_threshold: ratings at or above are positive (`rate`), below are
            negative (`rate_low`). 0.0 makes every rating positive.
        batch_rows: rows per yielded batch.

    >>> MovieLensAdapter(rating_threshold=3.5, batch_rows=1000).name
    'movielens'
    """

    name = "movielens"

    def __init__(self, *, rating_threshold: float = 0.0, batch_rows: int = 1_000_000) -> None:
        self.rating_threshold = rating_threshold
        self.batch_rows = batch_rows

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset:
        """Raw tables of the MovieLens directory `source`.

        File-level defects (no known layout, missing columns, empty files) raise
        `InputFileError` here, before any stream is consumed.
        """
        layout = detect_layout(source)
        probe(lambda q: self._ratings(layout, q, batch_rows=1))
        no_genre = sum(
            pc.sum(pc.equal(pc.list_value_length(b.column("topics")), 0)).as_py() or 0
            for b in self._items(layout, Quarantine())
        )
        notes = [
            f"layout: {layout.name} ({layout.ratings.name}, {layout.movies.name})",
            f"{no_genre} movie(s) have no genre ('(no genres listed)' or 'unknown'): "
            "they get an empty topic list",
            f"every rating is an engagement: rating >= {self.rating_threshold:g} is 'rate' "
            "(positive), below is 'rate_low' (negative)",
            "user_topics is empty: MovieLens has no followed topics"
            + (
                f" ({layout.tags.name}, free-text tags on movies, is not read)"
                if layout.tags
                else ""
            ),
            "source_topic is null: MovieLens logs no condition with a rating",
        ]
        return RawDataset(
            name=self.name,
            items=lambda: self._items(layout, quarantine),
            engagements=lambda: self._engagements(layout, quarantine),
            notes=tuple(notes),
        )

    # -- items ------------------------------------------------------------------

    def _items(self, layout: MovieLensLayout, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        batches = read_delimited(
            layout.movies,
            table="items",
            quarantine=quarantine,
            batch_rows=self.batch_rows,
            **_MOVIES_FORMAT[layout.name],
        )
        for batch in batches:
            if layout.name == "ml-100k":
                batch, genres = _flagged_genres(batch, quarantine)
            else:
                genres = split_topics(batch.column(1), "|")
            yield items_batch(
                item_id=batch.column(0),
                topics=_drop_no_genre(genres),
                file=batch.column("_file"),
                row=batch.column("_row"),
            )

    # -- engagements ------------------------------------------------------------

    def _ratings(
        self, layout: MovieLensLayout, quarantine: Quarantine, *, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Rating rows with columns user, item, rating, ts (strings) and provenance."""
        batches = read_delimited(
            layout.ratings,
            table="engagements",
            quarantine=quarantine,
            batch_rows=batch_rows,
            **_RATINGS_FORMAT[layout.name],
        )
        for batch in batches:
            yield batch.rename_columns(["user", "item", "rating", "ts", "_file", "_row"])

    def _engagements(
        self, layout: MovieLensLayout, quarantine: Quarantine
    ) -> Iterator[pa.RecordBatch]:
        for batch in self._ratings(layout, quarantine, batch_rows=self.batch_rows):
            # A decimal number (what float() reads, minus nan/inf, which are not ratings).
            numeric = _mask(
                pc.match_substring_regex(batch.column("rating"), _NUM_RE).fill_null(False)
            )
            rows = _Rows(quarantine, "engagements", batch, unread=True)
            rows.reject("rating", {"rating is not a number": ~numeric})
            if not numeric.all():
                batch = batch.filter(pa.array(numeric))
            value = pc.cast(pc.utf8_trim_whitespace(batch.column("rating")), pa.float64())
            positive = pc.greater_equal(value, self.rating_threshold)
            action = pc.if_else(positive, "rate", "rate_low")
            yield engagement_batch(
                user_id=batch.column("user"),
                item_id=batch.column("item"),
                ts=batch.column("ts"),
                action=action,
                file=batch.column("_file"),
                row=batch.column("_row"),
            )


def _flagged_genres(
    batch: pa.RecordBatch, quarantine: Quarantine
) -> tuple[pa.RecordBatch, pa.Array]:
    """ml-100k's genre flag columns as genre lists; a row with a flag not 0 or 1 is quarantined."""
    flags = np.array([batch.column(g).to_pylist() for g in ML100K_GENRES], dtype=object).T
    bad = (flags != "0") & (flags != "1")
    for i in np.flatnonzero(bad.any(axis=1)):
        j = int(np.argmax(bad[i]))
        quarantine.add(
            "items",
            batch.column("_file")[int(i)].as_py(),
            [batch.column("_row")[int(i)].as_py()],
            ML100K_GENRES[j],
            "genre flag is not 0 or 1",
            [flags[i, j]],
            unread=True,
        )
    keep = ~bad.any(axis=1)
    genres = [
        [g for g, f in zip(ML100K_GENRES, row, strict=True) if f == "1"] for row in flags[keep]
    ]
    return batch.filter(pa.array(keep)), pa.array(genres, pa.list_(pa.string()))


def _drop_no_genre(genres: pa.Array) -> pa.Array:
    labels = pa.array(sorted(NO_GENRE_LABELS), pa.string())
    return drop_topics(genres, lambda flat: pc.invert(pc.is_in(flat, value_set=labels)))


__all__ = [
    "ML100K_GENRES",
    "NO_GENRE_LABELS",
    "MovieLensAdapter",
    "MovieLensLayout",
    "detect_layout",
]
