"""Hostile text files for the reader fuzz tests: clean rows written, then damaged on purpose.

`hostile_file` writes rows of fields as a delimited text file (with or without
a header, any line ending, optionally a BOM and no final newline) and damages a
few data lines: an unclosed quote, a field too many or too few, a blank line,
undecodable bytes, a NUL, a stray CR, garbage. It remembers which lines it left
intact, so a test can demand that each of them is read back exactly as written,
and which damage must end in the quarantine.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from multiembed.data.quarantine import Quarantine
from multiembed.data.text import UNCLOSED_QUOTE

#: Damage that the reader must quarantine whatever the dialect.
ALWAYS_QUARANTINED = frozenset({"missing_field", "extra_field", "blank"})
#: Damage after which refusing the whole file (InputFileError) is a fair answer.
MAY_REFUSE = frozenset({"undecodable", "nul"})
DAMAGE = (
    "unclosed_quote",
    "missing_field",
    "extra_field",
    "blank",
    "undecodable",
    "nul",
    "stray_cr",
    "garbage",
)
LINE_ENDINGS = ("\n", "\r\n", "\r", "mixed", "universal")


def fuzz(examples: int) -> settings:
    """Deterministic hypothesis settings for `examples` generated files (no example database)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclass
class Written:
    """What `hostile_file` wrote and what a reader owes it."""

    path: Path
    first_line: int  # line number of the first data row
    n_lines: int  # data lines (each one a row in or a row quarantined)
    intact: dict[int, list[str]] = field(default_factory=dict)  # line -> fields as written
    damage: dict[int, str] = field(default_factory=dict)  # line -> kind of damage
    may_refuse: bool = False

    def __repr__(self) -> str:  # fields can be 140 KB long: show their start only
        short = {
            k: [f if len(f) < 40 else f"{f[:20]}...({len(f)} chars)" for f in v]
            for k, v in self.intact.items()
        }
        return (
            f"Written({self.path.name}, first_line={self.first_line}, n_lines={self.n_lines}, "
            f"intact={short}, damage={self.damage}, may_refuse={self.may_refuse})"
        )

    @property
    def lines(self) -> list[int]:
        return list(range(self.first_line, self.first_line + self.n_lines))


def text_field(
    *, delimiter: str, quoting: bool, encoding: str, max_size: int = 8
) -> st.SearchStrategy:
    """Field text that the dialect can carry on one line (no line ends; no delimiter unquoted)."""
    top = 0xFF if encoding == "latin-1" else 0x2FFF
    banned = "\r\n\x00" + ("" if quoting else delimiter + ":")
    return st.text(
        st.characters(min_codepoint=0x20, max_codepoint=top, exclude_characters=banned),
        max_size=max_size,
    )


def line_of(fields: Sequence[str], *, delimiter: str, quoting: bool) -> str:
    """One line of text for `fields`, quoted as csv would where `quoting`."""
    if not quoting or len(delimiter) != 1:
        return delimiter.join(fields)
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="").writerow(fields)
    return buf.getvalue()


@st.composite
def hostile_file(
    draw: st.DrawFn,
    path: Path,
    rows: list[list[str]],
    *,
    header: Sequence[str] | None,
    delimiter: str,
    quoting: bool,
    encoding: str,
) -> Written:
    """Writes `rows` (and `header`, if given) to `path` with a few lines damaged."""
    lines = [line_of(r, delimiter=delimiter, quoting=quoting) for r in rows]
    first = 1 if header is None else 2
    written = Written(path, first_line=first, n_lines=len(rows))
    damage = draw(
        st.dictionaries(st.integers(0, len(rows) - 1), st.sampled_from(DAMAGE), max_size=3)
    )
    ending = draw(st.sampled_from(LINE_ENDINGS))
    universal = ending in ("\r", "universal")
    texts: list[bytes] = []
    for i, (row, line) in enumerate(zip(rows, lines, strict=True)):
        kind = damage.get(i)
        if kind == "stray_cr" and (universal or i + first == 1):
            kind = None  # a CR ends the line there: that is a line ending, not damage
        if kind is None:
            written.intact[i + first] = list(row)
            texts.append(line.encode(encoding))
            continue
        written.damage[i + first] = kind
        written.may_refuse |= kind in MAY_REFUSE
        texts.append(_damaged(draw, kind, row, line, delimiter, quoting, encoding))
    if header is not None:
        head = line_of(header, delimiter=delimiter, quoting=quoting)
        bom = "\ufeff" if encoding == "utf-8" and draw(st.booleans()) else ""
        texts.insert(0, (bom + head).encode(encoding))
    ends = [_ending(draw, ending, i) for i in range(len(texts))]
    for i in range(1, len(texts)):
        if not texts[i] and ends[i - 1] == b"\r" and ends[i].startswith(b"\n"):
            ends[i] = b"\r"  # CR, blank line, LF would read as one CRLF
    if texts[-1] and not draw(st.booleans()):
        ends[-1] = b""  # no final newline: the last line is still whole
    if draw(st.integers(0, 9)) == 0 and len(texts[-1]) > 1 and len(texts) > first:
        cut = draw(st.integers(1, len(texts[-1]) - 1))  # a truncated final line
        texts[-1], ends[-1] = texts[-1][:cut], b""
        last = first + len(rows) - 1
        written.intact.pop(last, None)
        written.damage[last] = "truncated"
        written.may_refuse |= not _decodes(texts[-1], encoding)
    path.write_bytes(b"".join(t + e for t, e in zip(texts, ends, strict=True)))
    return written


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def _ending(draw: st.DrawFn, style: str, i: int) -> bytes:
    if style == "mixed":
        return draw(st.sampled_from([b"\n", b"\r\n"]))
    if style == "universal":  # the first line ends in a lone CR; later ones in anything
        return b"\r" if i == 0 else draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    return style.encode()


def _damaged(
    draw: st.DrawFn,
    kind: str,
    row: list[str],
    line: str,
    delimiter: str,
    quoting: bool,
    encoding: str,
) -> bytes:
    if kind == "unclosed_quote":
        return (line + delimiter + '"never closed').encode(encoding)
    if kind == "missing_field":
        return line_of(row[:-1], delimiter=delimiter, quoting=quoting).encode(encoding)
    if kind == "extra_field":
        return (line + delimiter + "extra").encode(encoding)
    if kind == "blank":
        return b""
    raw = line.encode(encoding)
    at = draw(st.integers(0, len(raw)))
    if kind == "undecodable":
        return raw[:at] + b"\xff\xfe" + raw[at:]
    if kind == "nul":
        return raw[:at] + b"\x00" + raw[at:]
    if kind == "stray_cr":
        return raw[:at] + b"\r" + raw[at:]
    garbage = draw(text_field(delimiter=delimiter, quoting=True, encoding=encoding, max_size=30))
    return garbage.replace("\r", "").encode(encoding, errors="replace")


def check_lines(
    written: Written,
    rows: pa.Table,
    quarantine: Quarantine,
    *,
    quoting: bool,
    table: str,
    rejected: Mapping[int, str] | None = None,
) -> dict[int, dict[str, object]]:
    """Every data line is read or quarantined, once; damaged lines that must go, went.

    `rejected` maps intact lines that the adapter itself must quarantine (a
    rating that is not a number) to the rule. Returns the rows read by line
    number, for the caller to compare with what it wrote.
    """
    rejected = rejected or {}
    name = str(written.path)
    mine = [
        r
        for r in quarantine.to_table().to_pylist()
        if (r["table"], r["source_file"]) == (table, name)
    ]
    quarantined = [r["row"] for r in mine]
    rules = {r["row"]: r["rule"] for r in mine}
    read = [r for r in rows.to_pylist() if r["_file"] == name]
    read_lines = [r["_row"] for r in read]
    # rows in == kept + quarantined, line by line
    assert sorted(read_lines + quarantined) == written.lines, (
        read_lines,
        quarantined,
        written.path.read_bytes()[:300],
    )
    for line, kind in written.damage.items():
        if kind in ALWAYS_QUARANTINED:
            assert line in quarantined, (line, kind)
        if kind == "unclosed_quote" and quoting:
            assert rules.get(line) == UNCLOSED_QUOTE, (line, rules.get(line))
    for line, rule in rejected.items():
        assert rules.get(line) == rule, (line, rules.get(line))
    missing = [line for line in written.intact if line not in read_lines and line not in rejected]
    assert not missing, f"intact lines not read: {missing}"
    return {r["_row"]: r for r in read}
