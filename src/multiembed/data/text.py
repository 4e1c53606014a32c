"""Reading delimited text sources row by row, with structural defects quarantined.

The reader yields Arrow batches of string columns plus provenance (`_file`,
`_row` = 1-based line number). It quarantines rows it cannot split into the
expected fields (wrong field count, a truncated final line, undecodable bytes,
blank lines) and raises `InputFileError` for defects of the whole file (missing,
empty, not text in the expected encoding, missing columns).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from multiembed.data.quarantine import Quarantine
from multiembed.errors import InputFileError

_PROBE_LINES = 1000  # lines inspected to tell a wrong encoding from a few bad rows


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
        columns: columns to return, by header name (or by `header` name).
        delimiter: field separator; a longer one (MovieLens' `::`) splits
            unquoted lines.
        encoding: text encoding; lines that fail to decode are quarantined.
        header: names of the fields when the file has no header row.
        quoting: honour double-quoted fields (CSV); off for plain TSV.
        batch_rows: rows per yielded batch.

    Yields:
        RecordBatches with one string column per name in `columns`, plus
        `_file` (string) and `_row` (int64, 1-based line number).
    """
    if not delimiter:
        raise ValueError("delimiter must be a non-empty string")
    name = str(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a directory", expected="a delimited text file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty", expected=_expect(columns, header, delimiter))
    with path.open("rb") as fh:
        probe = fh.read(65536)
    if b"\x00" in probe:
        raise InputFileError(
            path, "contains NUL bytes (binary data or UTF-16 text)", expected=f"{encoding} text"
        )

    lines = _DecodedLines(path, table, quarantine, encoding)
    fields_iter: Iterator[list[str]]
    if len(delimiter) == 1:
        fields_iter = csv.reader(
            lines, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
        )
    else:  # csv splits on one character only; multi-character separators are never quoted
        fields_iter = (line.split(delimiter) if line else [] for line in lines)
    if header is None:
        first = next(fields_iter, None)
        if first is None:
            raise InputFileError(path, "file is empty", expected=_expect(columns, None, delimiter))
        names = [f.strip().lstrip("\ufeff") for f in first]
    else:
        names = list(header)
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputFileError(
            path,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'nothing'})",
            expected=_expect(columns, header, delimiter),
        )
    width = len(names)
    picks = [names.index(c) for c in columns]

    buffers: list[list[str]] = [[] for _ in columns]
    rows: list[int] = []
    seen = 0
    for fields in fields_iter:
        line_no = lines.line_no
        seen += 1
        if len(fields) != width:
            rule, value = _shape_rule(
                fields, width, last=lines.unterminated_last, delimiter=delimiter
            )
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


class _DecodedLines:
    """Iterates decoded lines; undecodable lines are quarantined and skipped.

    Tracks the 1-based number of the last line handed out and whether that line
    was the file's last and lacked a newline (a truncated final line).
    """

    def __init__(self, path: Path, table: str, quarantine: Quarantine, encoding: str) -> None:
        self.path = path
        self.table = table
        self.quarantine = quarantine
        self.encoding = encoding
        self.line_no = 0
        self.decoded = 0
        self.undecodable = 0
        self.unterminated_last = False

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as fh:
            for raw in fh:
                self.line_no += 1
                self.unterminated_last = not raw.endswith(b"\n")
                try:
                    text = raw.decode(self.encoding)
                except UnicodeDecodeError:
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
