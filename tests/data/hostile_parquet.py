"""Hostile Parquet columns for the Parquet fuzz test, each with what validation owes every cell.

`column` draws one column of a given role (`id`, `ts`, `topics`, `source_topic`)
in one of many Arrow types, with awkward values mixed in. It returns the Arrow
array, the value each cell must come back as after prepare (`BAD` for a cell
whose row must be quarantined), and, for a column no canonical column can hold,
the start of the message that refuses the whole file.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pyarrow as pa
from hypothesis import strategies as st

T0 = 1_600_000_000  # 2020-09-13
LATEST_TS = 32_503_680_000  # 3000-01-01: later "seconds" are quarantined
INT64_MAX = 2**63 - 1
NAN, INF = float("nan"), float("inf")


class _Bad:
    def __repr__(self) -> str:
        return "BAD"


#: The cell's row must be quarantined.
BAD = _Bad()


@dataclass
class Column:
    """One generated column: the array, the owed value of each cell, and a whole-file refusal."""

    array: pa.Array
    owed: list[object]
    refusal: str | None = None  # start of the InputFileError's problem, after the file name


# -- ids ----------------------------------------------------------------------------

# (raw value, owed id) pairs per type; -1 is the service's padding and never an id.
_INT_IDS = [(1, 1), (2, 2), (3, 3), (7, 7), (-2, -2), (-1, BAD), (None, BAD)]
_FLOAT_IDS = [
    (1.0, 1),
    (2.0, 2),
    (3.0, 3),
    (-0.0, 0),
    (1e17, 10**17),
    (2.5, BAD),
    (NAN, BAD),
    (INF, BAD),
    (-INF, BAD),
    (-1.0, BAD),
    (2.0**62, BAD),  # a whole number, but beyond what an id may be
    (None, BAD),
]
_TEXT_IDS = [
    ("1", 1),
    (" 2 ", 2),
    ("+3", 3),
    ("07", 7),
    ("-2", -2),
    ("123456789012345678", 123456789012345678),
    ("x", BAD),
    ("", BAD),
    ("-1", BAD),
    ("1.5", BAD),
    ("1e3", BAD),
    ("99999999999999999999", BAD),
    (None, BAD),
]


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (a middle value: hypothesis favours the ends)."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


@st.composite
def _cells(draw: st.DrawFn, pairs: list[tuple[object, object]], n: int) -> tuple[list, list]:
    """`n` cells, about one in four of them bad; most good ones the first three (1, 2, 3)."""
    fine = [p for p in pairs if p[1] is not BAD]
    good = st.one_of(st.sampled_from(fine[:3]), st.sampled_from(fine[:3]), st.sampled_from(fine))
    bad = st.sampled_from([p for p in pairs if p[1] is BAD] or pairs)
    chosen = [draw(bad if rarely(draw, 4) else good) for _ in range(n)]
    return [raw for raw, _ in chosen], [owed for _, owed in chosen]


@st.composite
def id_column(draw: st.DrawFn, n: int) -> Column:
    kind = draw(
        st.sampled_from(["int64", "int32", "uint64", "float64", "string", "binary", "dict"])
    )
    kind = draw(st.sampled_from(["list", "struct"])) if rarely(draw, 20) else kind
    if kind in ("int64", "int32"):
        pairs = _INT_IDS + ([(10**17, 10**17)] if kind == "int64" else [])
        raw, owed = draw(_cells(pairs, n))
        return Column(pa.array(raw, getattr(pa, kind)()), owed)
    if kind == "uint64":
        pairs = [(v, o) for v, o in _INT_IDS if v is None or v >= 0] + [(INT64_MAX, INT64_MAX)]
        raw, owed = draw(_cells(pairs, n))
        refusal = None
        if n and rarely(draw, 12):
            raw[draw(st.integers(0, n - 1))] = 2**63 + 5
            refusal = "column"  # "column 'u', record 3: ... is beyond the int64 range"
        return Column(pa.array(raw, pa.uint64()), owed, refusal)
    if kind == "float64":
        raw, owed = draw(_cells(_FLOAT_IDS, n))
        return Column(pa.array(raw, pa.float64()), owed)
    raw, owed = draw(_cells(_TEXT_IDS, n))
    if kind == "string":
        return Column(pa.array(raw, pa.string()), owed)
    if kind == "dict":
        return Column(pa.array(raw, pa.string()).dictionary_encode(), owed)
    if kind == "binary":
        data = [None if v is None else v.encode() for v in raw]
        refusal = None
        if n and rarely(draw, 12):
            data[draw(st.integers(0, n - 1))] = b"\xff\xfe"
            refusal = "column"  # "column 'u' holds bytes that are not UTF-8 text"
        return Column(pa.array(data, pa.binary()), owed, refusal)
    return _refused_nested(kind, n)


def _refused_nested(kind: str, n: int) -> Column:
    if kind == "list":
        return Column(pa.array([[k] for k in range(n)], pa.list_(pa.int64())), [BAD] * n, "column")
    return Column(pa.array([{"s": k} for k in range(n)]), [BAD] * n, "column")


# -- timestamps ---------------------------------------------------------------------

_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _owed_ts(seconds: int) -> object:
    return seconds if 0 <= seconds < LATEST_TS else BAD


@st.composite
def _seconds(draw: st.DrawFn) -> int:
    """Mostly times within a few days; now and then far away, before 1970 or past 3000."""
    if not rarely(draw, 8):
        return T0 + draw(st.integers(0, 5 * 86_400))
    return draw(st.sampled_from([0, -5, 10**12, LATEST_TS - 1, LATEST_TS]))


def _iso(seconds: int, offset_minutes: int, form: str) -> str:
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    local = dt.datetime.fromtimestamp(seconds, tz)
    sign = "-" if offset_minutes < 0 else "+"
    hh, mm = divmod(abs(offset_minutes), 60)
    if form == "Z":
        return local.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "colon":
        return local.strftime("%Y-%m-%dT%H:%M:%S") + f".250{sign}{hh:02d}:{mm:02d}"
    return local.strftime("%Y-%m-%d %H:%M:%S") + f"{sign}{hh:02d}{mm:02d}"


@st.composite
def _ts_text(draw: st.DrawFn) -> tuple[str | None, object]:
    t = T0 + draw(st.integers(0, 5 * 86_400))
    form = draw(st.sampled_from(["int", "frac", "Z", "colon", "plain", "date"]))
    form = "junk" if rarely(draw, 6) else form
    if form == "int":
        return f" {t} ", t
    if form == "frac":
        return f"{t}.5", t
    if form in ("Z", "colon", "plain"):
        offset = 0 if form == "Z" else draw(st.sampled_from([-420, 0, 60, 330]))
        return _iso(t, offset, form), t
    if form == "date":
        day = dt.datetime.fromtimestamp(t, dt.UTC).date()
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        return day.isoformat(), int(midnight.timestamp())
    return draw(st.sampled_from([("soon", BAD), ("", BAD), ("2020-02-30", BAD), (None, BAD)]))


@st.composite
def ts_column(draw: st.DrawFn, n: int) -> Column:
    kind = draw(st.sampled_from(["int64", "int32", "float64", "timestamp", "date", "string"]))
    kind = draw(st.sampled_from(["list", "struct"])) if rarely(draw, 20) else kind
    if kind in ("list", "struct"):
        return _refused_nested(kind, n)
    raw: list[object] = []
    owed: list[object] = []
    if kind == "timestamp":
        unit = draw(st.sampled_from(list(_UNITS)))
        tz = draw(st.sampled_from([None, "UTC", "+02:00", "Asia/Kolkata"]))
        per = _UNITS[unit]
    for _ in range(n):
        if rarely(draw, 10):
            raw.append(None)
            owed.append(BAD)
            continue
        if kind == "string":
            text, want = draw(_ts_text())
            raw.append(text)
            owed.append(want)
            continue
        t = draw(_seconds())
        if kind == "int64":
            raw.append(t)
            owed.append(_owed_ts(t))
        elif kind == "int32":
            t = min(t, 2**31 - 1)
            raw.append(t)
            owed.append(_owed_ts(t))
        elif kind == "float64":
            x = draw(st.sampled_from([t + 0.5, float(t), NAN, INF, -INF, -0.5]))
            raw.append(x)
            owed.append(BAD if math.isnan(x) or math.isinf(x) else _owed_ts(math.floor(x)))
        elif kind == "timestamp":
            t = min(t, 9 * 10**9)  # nanoseconds since 1970 fit int64 until 2262
            ticks = t * per + draw(st.integers(-per + 1, per - 1)) * (per > 1)
            raw.append(ticks)
            owed.append(_owed_ts(ticks // per))
        else:  # days since 1970
            days = min(t, 9 * 10**9) // 86_400
            raw.append(days)
            owed.append(_owed_ts(days * 86_400))
    if kind == "timestamp":
        return Column(pa.array(raw, pa.int64()).cast(pa.timestamp(unit, tz)), owed)
    arrow = {"int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64()}
    arrow |= {"date": pa.date32(), "string": pa.string()}
    return Column(pa.array(raw, arrow[kind]), owed)


# -- topics -------------------------------------------------------------------------

_LIST_ELEMENTS = {
    "int64": [1, 2, 3, -1, None],
    "string": ["a", "b", " c", "", "-1", "é", None],
}


def _owed_topics(values: list[object]) -> object:
    """Topic keys as text, without nulls and empty text; a -1 topic quarantines the item."""
    keys = [str(v) for v in values if v is not None and v != ""]
    return BAD if "-1" in keys else keys


@st.composite
def topics_column(draw: st.DrawFn, n: int, separator: str) -> Column:
    kind = draw(
        st.sampled_from(["list_int", "list_str", "large_list", "fixed_list", "text", "int64"])
    )
    kind = "nested" if rarely(draw, 20) else kind
    if kind == "nested":
        nested = pa.array([[[1]]] * n, pa.list_(pa.list_(pa.int64())))
        return Column(nested, [BAD] * n, "column")
    if kind in ("text", "int64"):
        pool = ["a", "b|c", " d | e |", "", "-1", "a|-1", " -1 ", None]
        values = draw(st.lists(st.sampled_from(pool if kind == "text" else [1, 2, -1, None])))
        values = (values * n)[:n] if values else [None] * n
        if kind == "int64":
            return Column(pa.array(values, pa.int64()), [_owed_topics([v]) for v in values])
        arr = pa.array([None if v is None else v.replace("|", separator) for v in values])
        split = [[] if v is None else [p.strip() for p in v.split("|")] for v in values]
        return Column(arr, [_owed_topics(s) for s in split])
    element = "int64" if kind in ("list_int", "fixed_list") else "string"
    size = 2 if kind == "fixed_list" else None
    cell = st.lists(
        st.sampled_from(_LIST_ELEMENTS[element]),
        min_size=size or 0,
        max_size=size or 3,
    )
    lists = draw(st.lists(st.one_of(cell, st.none()), min_size=n, max_size=n))
    owed = [_owed_topics(v or []) for v in lists]
    value_type = pa.int64() if element == "int64" else pa.string()
    list_type = {
        "list_int": pa.list_(value_type),
        "list_str": pa.list_(value_type),
        "large_list": pa.large_list(value_type),
        "fixed_list": pa.list_(value_type, 2),
    }[kind]
    return Column(pa.array(lists, list_type), owed)


@st.composite
def source_topic_column(draw: st.DrawFn, n: int) -> Column:
    """The logged condition: a raw topic key, or null (text "" is null too); -1 is reserved."""
    kind = draw(st.sampled_from(["int64", "string", "float64"]))
    pairs: list[tuple[object, object]] = {
        "int64": [(1, "1"), (2, "2"), (-1, BAD), (None, None)],
        "string": [("a", "a"), (" b", " b"), ("", None), ("-1", BAD), (None, None)],
        "float64": [(1.0, "1"), (2.0, "2"), (-1.0, BAD), (None, None)],
    }[kind]
    raw, owed = draw(_cells(pairs, n))
    arrow = {"int64": pa.int64(), "string": pa.string(), "float64": pa.float64()}[kind]
    return Column(pa.array(raw, arrow), owed)
