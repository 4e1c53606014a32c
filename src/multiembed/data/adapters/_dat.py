"""Reading text files whose fields are separated by a multi-character string (`::`).

MovieLens 1M and 10M write `UserID::MovieID::Rating::Timestamp`, which the
`csv` module cannot split (its delimiter is one character). This reader keeps
every convention of `multiembed.data.text.read_delimited`: the same provenance
(`_file`, 1-based `_row`), the same quarantine rules ("truncated final line",
"undecodable text", "wrong number of fields (expected N, got M)", "blank
line"), the same row accounting (a rejected row is counted as read by the
quarantine, a yielded one by validation) and the same `InputFileError`s for defects of
the whole file. Fields are not quoted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from multiembed.data.quarantine import Quarantine

# The line decoder, shape rules and batch builder are read_delimited's own, so the
# two readers cannot drift apart in what they quarantine and how they report it.
from multiembed.data.text import _batch, _DecodedLines, _expect, _shape_rule
from multiembed.errors import InputFileError


def read_separated(
    path: Path,
    *,
    table: str,
    quarantine: Quarantine,
    columns: Sequence[str],
    separator: str,
    encoding: str = "utf-8",
    header: Sequence[str] | None = None,
    batch_rows: int = 1_000_000,
) -> Iterator[pa.RecordBatch]:
    """Streams `columns` of a file whose fields are separated by `separator`.

    Args:
        path: the file.
        table: the canonical table these rows feed (for quarantine accounting).
        quarantine: receives structurally bad rows (counted as read there; the
            rows yielded are counted by validation when it receives them).
        columns: columns to return, by header name (or by `header` name).
        separator: field separator, any non-empty string (e.g. `"::"`).
        encoding: text encoding; lines that fail to decode are quarantined.
        header: names of the fields when the file has no header row.
        batch_rows: rows per yielded batch.

    Yields:
        RecordBatches with one string column per name in `columns`, plus
        `_file` (string) and `_row` (int64, 1-based line number).

    Raises:
        InputFileError: the file is missing, empty, binary, not `encoding`
            text, or lacks one of `columns`.
    """
    if not separator:
        raise ValueError("separator must be a non-empty string")
    name = str(path)
    expected = _expect(columns, header, separator)
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(
            path, "is a directory", expected=f"a {separator!r}-separated text file"
        )
    if path.stat().st_size == 0:
        raise InputFileError(path, "file is empty", expected=expected)
    with path.open("rb") as fh:
        probe = fh.read(65536)
    if b"\x00" in probe:
        raise InputFileError(
            path, "contains NUL bytes (binary data or UTF-16 text)", expected=f"{encoding} text"
        )

    lines = _DecodedLines(path, table, quarantine, encoding)
    fields_iter = (line.split(separator) if line else [] for line in lines)
    if header is None:
        first = next(fields_iter, None)
        if first is None:
            raise InputFileError(path, "file is empty", expected=expected)
        names = [f.strip().lstrip("\ufeff") for f in first]
    else:
        names = list(header)
    missing = [c for c in columns if c not in names]
    if missing:
        raise InputFileError(
            path,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(names) or 'nothing'})",
            expected=expected,
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
                fields, width, last=lines.unterminated_last, delimiter=separator
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
