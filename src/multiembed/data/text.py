"""Reading delimited text sources row by row, with structural defects quarantined.

The reader yields Arrow batches of string columns plus provenance (`_file`,
`_row` = 1-based line number). It quarantines rows it cannot split into the
expected fields (wrong field count, an unclosed quote, a truncated final line,
undecodable bytes, blank lines) and raises `InputFileError` for defects of the
whole file (missing, empty, not text in the expected encoding, missing or
repeated columns).

One line is one row: no supported format declares fields that span lines, so
a quoted field must close on the line it opens, and a stray quote costs one
row, never the rest of the file. Lines end in LF or CRLF; a file whose first
line ends in a lone CR (old Mac text) is read with universal newlines.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from multiembed.data.quarantine import Quarantine
from multiembed.errors import InputFileError

_PROBE_BYTES = 65536  # bytes inspected for binary content and the line ending
_PROBE_LINES = 1000  # lines inspected to tell a wrong encoding from a few bad rows
# Characters whose bytes the reader splits on: an encoding must keep them single ASCII bytes.
_STRUCTURE = '\n\r\t,;|: "'

UNCLOSED_QUOTE = "unclosed quote (a quoted field must end on its own line)"


def line_encoding(name: str) -> bool:
    """True when `name` is a text encoding the reader can split into lines by bytes.

    That is one Python knows whose newline, tab, comma, quote and other
    separators are their ASCII bytes (UTF-8, Latin-1, GBK, ...; not UTF-16).

    >>> line_encoding("latin-1"), line_encoding("utf-16"), line_encoding("base64")
    (True, False, False)
    """
    try:
        codecs.lookup(name)
        return _STRUCTURE.encode("ascii").decode(name) == _STRUCTURE
    except (LookupError, UnicodeError, TypeError, ValueError):
        return False


def read_delimited(
    path: Path,
    *,
    table: str,
    quarantine: Quarantine,
    columns: Sequence[str],
    delimiter: str = ",",
    encoding: str = "utf-8",
    header: Sequence[str] | None = None,
    quoting: bool = True,
    batch_rows: int = 1_000_000,
) -> Iterator[pa.RecordBatch]:
    """Streams `columns` of a delimited text file as string batches.

    Args:
        path: the file.
        table: the canonical table these rows feed (for quarantine accounting).
        quarantine: receives structurally bad rows (counted as read there; the
            rows yielded are counted by validation when it receives them).
        columns: columns to return, by header name (or by `header` name); each
            must be named once.
        delimiter: field separator; a longer one (MovieLens' `::`) splits
            unquoted lines.
        encoding: text encoding (see `line_encoding`); lines that fail to
            decode are quarantined.
        header: names of the fields when the file has no header row.
        quoting: honour double-quoted fields (CSV); off for plain TSV.
        batch_rows: rows per yielded batch.

    Yields:
        RecordBatches with one string column per name in `columns`, plus
        `_file` (string) and `_row` (int64, 1-based line number).

    Raises:
        InputFileError: the file is missing, empty, binary, not in `encoding`,
            or its header lacks or repeats a column in `columns`.
    """
    if not delimiter or delimiter.strip('\r\n"') != delimiter:
        raise ValueError(f"delimiter {delimiter!r}: must be non-empty, without quotes or newlines")
    if not line_encoding(encoding):
        raise ValueError(f"encoding {encoding!r}: not a text encoding with ASCII line ends")
    name = str(path)
    expected = _expect(columns, header, delimiter)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a directory", expected="a delimited text file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty", expected=expected)
    with path.open("rb") as fh:
        probe = fh.read(_PROBE_BYTES)
    if b"\x00" in probe:
        raise InputFileError(
            path, "contains NUL bytes (binary data or UTF-16 text)", expected=f"{encoding} text"
        )

    lines = _DecodedLines(path, table, quarantine, encoding, universal=_ends_in_lone_cr(path))
    quoted = quoting and len(delimiter) == 1
    line_iter = iter(lines)
    if header is None:
        first = next(line_iter, None)
        if first is None:
            raise InputFileError(path, "file is empty", expected=expected)
        try:
            fields = _split(first, delimiter, quoted=quoted)
        except _Unsplittable as err:
            raise InputFileError(path, f"header row: {err.rule}", expected=expected) from None
        names = [f.strip().lstrip("\ufeff") for f in fields]
    else:
        names = list(header)
    _check_columns(path, names, columns, expected)
    width = len(names)
    picks = [names.index(c) for c in columns]

    if quoted:
        records = _quoted_records(_Feed(lines, line_iter), delimiter)
    else:  # unquoted text: each line split at every delimiter
        records = (
            (lines.line_no, _split(line, delimiter, quoted=False), None) for line in line_iter
        )
    buffers: list[list[str]] = [[] for _ in columns]
    rows: list[int] = []
    seen = 0
    for line_no, fields, unsplittable in records:
        seen += 1
        if unsplittable is not None:
            quarantine.add(
                table, name, [line_no], "*", unsplittable.rule, [unsplittable.line], unread=True
            )
            continue
        if len(fields) != width:
            last = lines.unterminated_last and line_no == lines.line_no
            rule, value = _shape_rule(fields, width, last=last, delimiter=delimiter)
            quarantine.add(table, name, [line_no], "*", rule, [value], unread=True)
            continue
        for buf, i in zip(buffers, picks, strict=True):
            buf.append(fields[i])
        rows.append(line_no)
        if len(rows) >= batch_rows:
            yield _batch(columns, buffers, rows, name)
            buffers = [[] for _ in columns]
            rows = []
    if lines.decoded == 0 and lines.undecodable > 0:
        raise InputFileError(path, f"no line decodes as {encoding}", expected=f"{encoding} text")
    if header is None and seen == 0 and lines.undecodable == 0:
        raise InputFileError(path, "has a header but no rows", expected="at least one data row")
    if rows:
        yield _batch(columns, buffers, rows, name)


def require_columns(
    path: Path, names: Sequence[str], columns: Sequence[str], expected: str
) -> None:
    """Raises `InputFileError` naming the `columns` a file's column `names` lack."""
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputFileError(
            path,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'nothing'})",
            expected=expected,
        )


def _check_columns(path: Path, names: list[str], columns: Sequence[str], expected: str) -> None:
    """Every wanted column is in the header exactly once."""
    require_columns(path, names, columns, expected)
    for c in dict.fromkeys(columns):
        where = [str(i + 1) for i, n in enumerate(names) if n == c]
        if len(where) > 1:
            raise InputFileError(
                path,
                f"column {c!r} is named {len(where)} times in the header "
                f"(fields {', '.join(where)}), so which one holds it is ambiguous",
                expected="each column named once",
            )


def _expect(columns: Sequence[str], header: Sequence[str] | None, delimiter: str) -> str:
    sep = "tab" if delimiter == "\t" else repr(delimiter)
    if header is None:
        return f"a header row with columns {', '.join(columns)} ({sep}-separated)"
    return f"rows of {len(header)} {sep}-separated fields: {', '.join(header)}"


def _shape_rule(fields: list[str], width: int, *, last: bool, delimiter: str) -> tuple[str, str]:
    value = delimiter.join(fields)
    if not fields:
        return "blank line", value
    if last and len(fields) < width:
        return "truncated final line", value
    return f"wrong number of fields (expected {width}, got {len(fields)})", value


def _batch(
    columns: Sequence[str], buffers: list[list[str]], rows: list[int], name: str
) -> pa.RecordBatch:
    arrays = [pa.array(b, pa.string()) for b in buffers]
    arrays.append(pa.array([name] * len(rows), pa.string()))
    arrays.append(pa.array(rows, pa.int64()))
    return pa.RecordBatch.from_arrays(arrays, names=[*columns, "_file", "_row"])


def _ends_in_lone_cr(path: Path) -> bool:
    """True when the first line of `path` ends in a CR not followed by LF."""
    with path.open("rb") as fh:
        while chunk := fh.read(_PROBE_BYTES):
            cr, lf = chunk.find(b"\r"), chunk.find(b"\n")
            if lf != -1 and (cr == -1 or lf < cr):
                return False
            if cr != -1:
                after = chunk[cr + 1 : cr + 2] or fh.read(1)
                return after != b"\n"
    return False


class _Unsplittable(Exception):
    """A line that cannot be split into fields; `rule` says why."""

    def __init__(self, rule: str, line: str) -> None:
        super().__init__(rule)
        self.rule = rule
        self.line = line


# Line number, fields, and why the line could not be split (then the fields are empty).
_Record = tuple[int, list[str], _Unsplittable | None]


def _split(line: str, delimiter: str, *, quoted: bool) -> list[str]:
    """The fields of one line (none for an empty line); `quoted` honours double quotes."""
    if quoted and '"' in line:
        return _split_quoted(line, delimiter)
    return line.split(delimiter) if line else []


def _split_quoted(line: str, delimiter: str) -> list[str]:
    """Fields of one line as `csv` reads them, with no field size cap.

    Raises `_Unsplittable` for a quote left open at the end of the line.
    """
    # csv asks for the second (empty) line only from inside a quote left open.
    reader = csv.reader(iter((line, "")), delimiter=delimiter, strict=False)
    limit = csv.field_size_limit()
    if len(line) >= limit:  # a field is never longer than its line: lift the cap for it
        csv.field_size_limit(len(line) + 1)
    try:
        fields = next(reader)
    except csv.Error as err:
        raise _Unsplittable(f"unreadable CSV line ({err})", line) from None
    finally:
        if len(line) >= limit:
            csv.field_size_limit(limit)
    if reader.line_num > 1:
        raise _Unsplittable(UNCLOSED_QUOTE, line)
    return fields


class _QuoteLeftOpen(Exception):
    """`csv` asked for another line to finish a record: a quote was left open."""


class _Feed:
    """Hands decoded lines to `csv`, one line per record.

    `csv` would continue an open quote on the next line; asking for a second
    line within one record raises `_QuoteLeftOpen` instead, so that only the
    line with the open quote is lost.
    """

    def __init__(self, lines: _DecodedLines, it: Iterator[str]) -> None:
        self.lines = lines
        self.it = it
        self.line_no = 0
        self.line = ""
        self.taken = False

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        if self.taken:
            raise _QuoteLeftOpen
        self.line = next(self.it)
        self.line_no = self.lines.line_no
        self.taken = True
        return self.line


def _quoted_records(feed: _Feed, delimiter: str) -> Iterator[_Record]:
    """Records of CSV text with double quotes: `csv` reads each line, a bad line alone is lost."""
    reader = csv.reader(feed, delimiter=delimiter, strict=False)
    while True:
        feed.taken = False
        try:
            fields = next(reader)
        except StopIteration:
            return
        except _QuoteLeftOpen:
            yield feed.line_no, [], _Unsplittable(UNCLOSED_QUOTE, feed.line)
            continue
        except csv.Error:  # a field over csv's size cap, a NUL: read the line on its own
            try:
                fields = _split_quoted(feed.line, delimiter)
            except _Unsplittable as err:
                yield feed.line_no, [], err
                continue
        yield feed.line_no, fields, None


class _DecodedLines:
    """Iterates decoded lines; undecodable lines are quarantined and skipped.

    Tracks the 1-based number of the last line handed out and whether that line
    was the file's last and lacked a newline (a truncated final line). With
    `universal`, CR, LF and CRLF all end a line.
    """

    def __init__(
        self, path: Path, table: str, quarantine: Quarantine, encoding: str, *, universal: bool
    ) -> None:
        self.path = path
        self.table = table
        self.quarantine = quarantine
        self.encoding = encoding
        self.universal = universal
        self.line_no = 0
        self.decoded = 0
        self.undecodable = 0
        self.unterminated_last = False

    def _raw_lines(self) -> Iterator[bytes]:
        if not self.universal:
            with self.path.open("rb") as fh:
                yield from fh
            return
        # Latin-1 maps each byte to one character and back: the text layer only
        # finds the line ends (translated to LF), the real decoding happens below.
        with self.path.open("r", encoding="latin-1", newline=None) as fh:
            for line in fh:
                yield line.encode("latin-1")

    def __iter__(self) -> Iterator[str]:
        for raw in self._raw_lines():
            self.line_no += 1
            self.unterminated_last = not raw.endswith(b"\n")
            try:
                text = raw.decode(self.encoding)
            except UnicodeError:
                self.undecodable += 1
                if self.line_no == 1 or (
                    self.line_no <= _PROBE_LINES and self.undecodable * 2 > self.line_no
                ):
                    raise InputFileError(
                        self.path,
                        f"line {self.line_no} is not {self.encoding} text",
                        expected=f"{self.encoding} text (pass the right encoding)",
                    ) from None
                self.quarantine.add(
                    self.table,
                    str(self.path),
                    [self.line_no],
                    "*",
                    "undecodable text",
                    [raw],
                    unread=True,
                )
                continue
            self.decoded += 1
            yield text.rstrip("\r\n")
