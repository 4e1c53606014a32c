"""Last.fm HetRec 2011: tagging events as engagements conditioned on their tag.

The release (`hetrec2011-lastfm-2k`) is tab-separated Latin-1 text with a
header row. This adapter reads:

- `user_taggedartists.dat` (userID, artistID, tagID, day, month, year): every
  row is an engagement (action `tag`) whose tag is its `source_topic`, the
  condition logged at engagement time (the paper's "source interest"). Its
  timestamp is the ISO date `YYYY-MM-DD`; an impossible date (30 February, a
  month 13, a non-number) becomes a text validation cannot parse, so the row is
  quarantined rather than silently moved to another day.
- `artists.dat` (id, name, url, pictureURL): the item table. An artist's topics
  are the tags users attached to it in the tagging file. Artists that are
  tagged but absent from `artists.dat` are left to validation ("item_id not in
  the item table").
- `tags.dat` (tagID, tagValue), optional: topic names for reports.

A user's tags are their followed topics: one `user_topics` row per (user, tag)
with `followed_at` = the first time the user used the tag (later, example
building keeps only follows made before a target's time). Tagging dates before
2002, when Last.fm did not exist, are not taken as a first use when the user
used the tag on a plausible date too. `user_artists.dat` (play counts without
time) and `user_friends.dat` are not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from multiembed.data.adapters._common import (
    DerivedItems,
    constant,
    engagement_batch,
    items_batch,
    nonempty,
    probe,
    singletons,
    user_topics_batch,
)
from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.errors import InputFileError

TAGGINGS_FILE = "user_taggedartists.dat"
ARTISTS_FILE = "artists.dat"
TAGS_FILE = "tags.dat"
_TAGGING_COLUMNS = ("userID", "artistID", "tagID", "day", "month", "year")
_ENCODING = "latin-1"

#: Last.fm launched in 2002: an earlier tagging date is a data error, never a first use
#: (unless the user used that tag on no other date; then validation judges it).
EARLIEST_PLAUSIBLE = "2002-01-01"

_EXPECTED = (
    f"a Last.fm HetRec 2011 directory (hetrec2011-lastfm-2k) with {TAGGINGS_FILE} "
    f"and {ARTISTS_FILE} (tab-separated, header row)"
)


def iso_date(day: str, month: str, year: str) -> str:
    """The ISO date of day/month/year fields, or a text no date parser accepts.

    Validation parses ISO dates with a lenient parser that would roll an
    impossible date over (30 February -> 2 March), so an impossible date is
    spelled out instead and quarantined by validation.

    >>> iso_date("1", "4", "2009")
    '2009-04-01'
    >>> iso_date("30", "2", "2009")
    'day=30 month=2 year=2009'
    """
    return str(iso_dates(pa.array([day]), pa.array([month]), pa.array([year]))[0].as_py())


def iso_dates(day: pa.Array, month: pa.Array, year: pa.Array) -> pa.Array:
    """`iso_date` over whole columns of day, month and year strings."""
    day, month, year = (pc.utf8_trim_whitespace(a.cast(pa.string())) for a in (day, month, year))
    iso = pc.binary_join_element_wise(
        pc.utf8_lpad(year, 4, "0"), pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), "-"
    )
    digits = pc.and_(
        pc.and_(
            pc.match_substring_regex(day, r"^\d{1,2}$"),
            pc.match_substring_regex(month, r"^\d{1,2}$"),
        ),
        pc.match_substring_regex(year, r"^\d{4}$"),
    )
    # A real calendar date survives a round trip through the parser unchanged.
    parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
    same = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), iso)
    valid = pc.fill_null(pc.and_(digits, same), False)
    parts = {"day": day, "month": month, "year": year}
    spelled = pc.binary_join_element_wise(
        *(pc.binary_join_element_wise(k, pc.fill_null(v, ""), "=") for k, v in parts.items()), " "
    )
    return pc.if_else(valid, iso, spelled)


class LastfmAdapter:
    """Reads the Last.fm HetRec 2011 release (`hetrec2011-lastfm-2k`).

    Args:
        batch_rows: rows per yielded batch.

    >>> LastfmAdapter(batch_rows=1000).name
    'lastfm'
    """

    name = "lastfm"

    def __init__(self, *, batch_rows: int = 1_000_000) -> None:
        self.batch_rows = batch_rows

    def read(self, source: Path, quarantine: Quarantine) -> RawDataset:
        """Raw tables of the HetRec directory `source`.

        Raises:
            InputFileError: `source` is not a directory holding the tagging and
                artist files, or one of them is empty or lacks a column.
        """
        if not source.is_dir():
            problem = "not found" if not source.exists() else "is not a directory"
            raise InputFileError(source, problem, expected=_EXPECTED)
        missing = [f for f in (TAGGINGS_FILE, ARTISTS_FILE) if not (source / f).is_file()]
        if missing:
            raise InputFileError(source, f"has no {' or '.join(missing)}", expected=_EXPECTED)
        taggings, artists, tags = source / TAGGINGS_FILE, source / ARTISTS_FILE, source / TAGS_FILE
        probe(lambda q: self._taggings(taggings, q, batch_rows=1))
        probe(lambda q: self._read(artists, "items", q, ["id"], batch_rows=1))
        topic_names = self._topic_names(tags) if tags.is_file() else {}

        notes = [
            "engagements: every tagging event (action 'tag'); its tag is the logged source_topic",
            "item topics: the tags users attached to the artist",
            "user_topics: a user's tags, followed_at = first use of the tag "
            f"(tagging dates before {EARLIEST_PLAUSIBLE} are not taken as a first use)",
            "timestamps have day resolution: events of one user on one day share a timestamp",
            f"text read as {_ENCODING}",
        ]
        if not tags.is_file():
            notes.append(f"no {TAGS_FILE}: topics are named by tag id")
        for name, why in (
            ("user_artists.dat", "play counts without time"),
            ("user_friends.dat", "social graph"),
            ("user_taggedartists-timestamps.dat", "dates are taken from day/month/year"),
        ):
            if (source / name).is_file():
                notes.append(f"{name} is not read ({why})")
        return RawDataset(
            name=self.name,
            items=lambda: self._items(artists, taggings, quarantine),
            engagements=lambda: self._engagements(taggings, quarantine),
            user_topics=lambda: self._user_topics(taggings),
            topic_names=topic_names,
            notes=tuple(notes),
        )

    # -- readers ----------------------------------------------------------------

    def _read(
        self, path: Path, table: str, quarantine: Quarantine, columns: list[str], *, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        return read_delimited(
            path,
            table=table,
            quarantine=quarantine,
            columns=columns,
            delimiter="\t",
            encoding=_ENCODING,
            quoting=False,
            batch_rows=batch_rows,
        )

    def _taggings(
        self, path: Path, quarantine: Quarantine, *, batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """Tagging rows: user, artist, tag (stripped strings), ISO date, provenance."""
        for batch in self._read(
            path, "engagements", quarantine, list(_TAGGING_COLUMNS), batch_rows=batch_rows
        ):
            ids = [pc.utf8_trim_whitespace(batch.column(c)) for c in _TAGGING_COLUMNS[:3]]
            dates = iso_dates(*(batch.column(c) for c in _TAGGING_COLUMNS[3:]))
            yield pa.RecordBatch.from_arrays(
                [*ids, dates, batch.column("_file"), batch.column("_row")],
                names=["user", "artist", "tag", "date", "_file", "_row"],
            )

    def _topic_names(self, path: Path) -> dict[str, str]:
        names: dict[str, str] = {}
        for batch in self._read(
            path, "topics", Quarantine(), ["tagID", "tagValue"], batch_rows=self.batch_rows
        ):
            for key, value in zip(
                batch.column("tagID").to_pylist(), batch.column("tagValue").to_pylist(), strict=True
            ):
                names.setdefault(key.strip(), value)
        return names

    # -- raw tables -------------------------------------------------------------

    def _items(
        self, artists: Path, taggings: Path, quarantine: Quarantine
    ) -> Iterator[pa.RecordBatch]:
        # Structural defects of the tagging file are reported once, by the engagement pass.
        tagged = DerivedItems(batch_rows=self.batch_rows)
        for batch in self._taggings(taggings, Quarantine(), batch_rows=self.batch_rows):
            kept = batch.filter(nonempty(batch.column("tag")))
            tagged.add(
                kept.column("artist"), singletons(kept.column("tag")), kept.column("_row"), ""
            )
        topics_of: dict[str, list[str]] = {}
        for batch in tagged.batches():
            ids, topics = batch.column("item_id").to_pylist(), batch.column("topics").to_pylist()
            topics_of.update(zip(ids, topics, strict=True))
        for batch in self._read(artists, "items", quarantine, ["id"], batch_rows=self.batch_rows):
            ids = pc.utf8_trim_whitespace(batch.column("id")).to_pylist()
            yield items_batch(
                item_id=batch.column("id"),
                topics=pa.array([topics_of.get(i, []) for i in ids], pa.list_(pa.string())),
                file=batch.column("_file"),
                row=batch.column("_row"),
            )

    def _engagements(self, taggings: Path, quarantine: Quarantine) -> Iterator[pa.RecordBatch]:
        for batch in self._taggings(taggings, quarantine, batch_rows=self.batch_rows):
            yield engagement_batch(
                user_id=batch.column("user"),
                item_id=batch.column("artist"),
                ts=batch.column("date"),
                action=constant("tag", batch.num_rows),
                source_topic=batch.column("tag"),
                file=batch.column("_file"),
                row=batch.column("_row"),
            )

    def _user_topics(self, taggings: Path) -> Iterator[pa.RecordBatch]:
        """One follow per (user, tag) at its first use; provenance is that tagging row."""
        # (user, tag) -> (plausible?, date, row); the smallest tuple is the first use.
        first: dict[tuple[str, str], tuple[bool, str, int]] = {}
        for batch in self._taggings(taggings, Quarantine(), batch_rows=self.batch_rows):
            for user, tag, date, row in zip(
                batch.column("user").to_pylist(),
                batch.column("tag").to_pylist(),
                batch.column("date").to_pylist(),
                batch.column("_row").to_pylist(),
                strict=True,
            ):
                if not user or not tag:
                    continue  # no follow without a user and a tag; validation reports the row
                # Implausible or unparsable (spelled-out) dates sort after every plausible one.
                key = (date.startswith("day=") or date < EARLIEST_PLAUSIBLE, date, row)
                seen = first.get((user, tag))
                if seen is None or key < seen:
                    first[(user, tag)] = key
        rows = sorted((row, user, tag, date) for (user, tag), (_, date, row) in first.items())
        name = str(taggings)
        for start in range(0, len(rows), self.batch_rows):
            chunk = rows[start : start + self.batch_rows]
            yield user_topics_batch(
                user_id=pa.array([c[1] for c in chunk], pa.string()),
                topic=pa.array([c[2] for c in chunk], pa.string()),
                followed_at=pa.array([c[3] for c in chunk], pa.string()),
                file=constant(name, len(chunk)),
                row=pa.array([c[0] for c in chunk], pa.int64()),
            )


__all__ = ["EARLIEST_PLAUSIBLE", "LastfmAdapter", "iso_date", "iso_dates"]
