"""Vectorised cell parsers: raw Arrow columns to typed numpy arrays plus a rule per bad cell.

Each parser returns `(values, bad)` where `bad` maps a rule to a boolean mask
of the rows that broke it (masks are disjoint; the first rule wins). A rule
names the likely fix where there is one, because it is what the user reads in
the quarantine report.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_INT_RE = r"^\s*[+-]?\d+\s*$"
_NUM_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
# ISO-8601 / RFC 3339: a date, optionally a time (seconds and fraction optional)
# and a UTC offset (Z, +05:30, -0800, +01). Fractions of a second are dropped.
_ISO_RE = (
    r"^\s*(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<hm>\d{2}:\d{2})(?P<sec>:\d{2})?(?:\.\d+)?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<oh>\d{2})(?::?(?P<om>\d{2}))?)?)?\s*$"
)
_ISO_FORMAT = "%Y-%m-%d %H:%M:%S"

#: Raw id the service uses as padding; a source id equal to it would be indistinguishable.
RESERVED_ID = -1
#: 3000-01-01T00:00:00Z. Later "seconds" are milliseconds or microseconds in practice,
#: and bounding them keeps every derived date (spans, fences) printable.
LATEST_TS = 32_503_680_000

NOT_INTEGER_ID = "not an integer id (for string ids set integer_ids = false in the column mapping)"
RESERVED_ID_RULE = f"id {RESERVED_ID} is reserved (the service pads with it)"
NOT_TIME = (
    "not a number or date (expected seconds since 1970 or ISO-8601 such as "
    "2017-11-25, 2017-11-25 08:30:00 or 2017-11-25T08:30:00Z)"
)
TOO_LATE = "timestamp after the year 3000 (milliseconds? expected seconds since 1970)"

Bad = dict[str, np.ndarray]


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _nulls(arr: pa.Array) -> np.ndarray:
    return _mask(arr.is_null())


def parse_ids(arr: pa.Array, *, integer: bool) -> tuple[pa.Array, Bad]:
    """Ids: int64 when `integer` (rule `NOT_INTEGER_ID`), else stripped strings.

    An integer id of -1 is quarantined (`RESERVED_ID_RULE`): the service pads
    its answers with -1 and promises never to return it as an id.

    >>> vals, bad = parse_ids(pa.array(["7", " 8", "x9", None, "-1"]), integer=True)
    >>> vals.to_pylist()[:2], bad[NOT_INTEGER_ID].tolist(), bad["missing value"].tolist()
    ([7, 8], [False, False, True, False, False], [False, False, False, True, False])
    >>> bad[RESERVED_ID_RULE].tolist()
    [False, False, False, False, True]
    """
    missing = _nulls(arr)
    if pa.types.is_integer(arr.type):
        values = arr.cast(pa.int64())
        return values, {"missing value": missing, RESERVED_ID_RULE: _reserved(values)}
    if pa.types.is_floating(arr.type):
        whole = pc.equal(arr, pc.floor(arr)).fill_null(False)
        # Whole numbers beyond int64 do not fit an id either.
        fits = pc.less(pc.abs(arr), 2.0**62).fill_null(False)
        ok = _mask(whole) & _mask(fits)
        values = pc.if_else(pa.array(ok), arr, 0.0).cast(pa.int64())
    else:
        text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        if not integer:
            empty = _mask(pc.equal(pc.utf8_length(text), 0).fill_null(False))
            return text, {"missing value": missing | empty}
        ok = _mask(pc.match_substring_regex(text, _INT_RE).fill_null(False))
        # Python's int() handles digits beyond int64; Arrow cast refuses them: check length.
        ok &= ~_mask(pc.greater(pc.utf8_length(text), 18).fill_null(False))
        unsigned = pc.replace_substring_regex(text, r"^\+", "")  # Arrow's cast refuses "+7"
        values = pc.if_else(pa.array(ok), unsigned, "0").cast(pa.int64())
    return values, {
        "missing value": missing,
        NOT_INTEGER_ID: ~ok & ~missing,
        RESERVED_ID_RULE: _reserved(values) & ok,
    }


def _reserved(values: pa.Array) -> np.ndarray:
    return _mask(pc.equal(values, RESERVED_ID).fill_null(False))


def parse_timestamps(arr: pa.Array) -> tuple[np.ndarray, Bad]:
    """Seconds since the epoch as int64 from integers, numbers or ISO-8601 strings.

    ISO-8601 text may carry a time of day and a UTC offset (`Z`, `+05:30`);
    without an offset it is read as UTC. Values from the year 3000 on are
    quarantined (`TOO_LATE`): in practice they are milliseconds.

    >>> ts, bad = parse_timestamps(pa.array(["10", "2.5", "1970-01-02", "1970-02-30", "-3"]))
    >>> ts.tolist()[:3], bad[NOT_TIME].tolist(), bad["negative timestamp"].tolist()
    ([10, 2, 86400], [False, False, False, True, False], [False, False, False, False, True])
    >>> ts, bad = parse_timestamps(pa.array(["1970-01-01T01:00:00+01:00", "1700000000000"]))
    >>> ts.tolist()[0], bad[TOO_LATE].tolist()
    (0, [False, True])
    """
    missing = _nulls(arr)
    n = len(arr)
    if pa.types.is_integer(arr.type):
        ts = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        unparsed = np.zeros(n, dtype=bool)
    elif pa.types.is_floating(arr.type):
        raw = np.asarray(arr.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        unparsed = np.isnan(raw) & ~missing
        ts = _seconds(np.where(unparsed, 0.0, raw))
    else:
        text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        is_num = _mask(pc.match_substring_regex(text, _NUM_RE).fill_null(False))
        num = pc.if_else(pa.array(is_num), text, "0").cast(pa.float64())
        ts = _seconds(np.asarray(num.to_numpy(zero_copy_only=False), dtype=np.float64))
        unparsed = ~is_num & ~missing
        if unparsed.any():
            iso, got = _iso_seconds(text)
            got &= unparsed
            ts = np.where(got, iso, ts)
            unparsed &= ~got
    parsed = ~unparsed & ~missing
    return ts, {
        "missing value": missing,
        NOT_TIME: unparsed,
        "negative timestamp": parsed & (ts < 0),
        TOO_LATE: parsed & (ts >= LATEST_TS),
    }


def _seconds(raw: np.ndarray) -> np.ndarray:
    """Whole seconds of finite or infinite floats, clipped to [-1, LATEST_TS] so they fit int64."""
    return np.floor(np.clip(raw, -1.0, float(LATEST_TS))).astype(np.int64)


def _iso_seconds(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Seconds of the ISO-8601 strings in `text` and the mask of those that are real times."""
    parts = pc.extract_regex(text, _ISO_RE)
    matched = _mask(parts.is_valid())
    fields = {name: parts.field(name).fill_null("") for name in ("date", "hm", "sec", "oh", "om")}
    hm = pc.if_else(pc.equal(fields["hm"], ""), "00:00", fields["hm"])
    sec = pc.if_else(pc.equal(fields["sec"], ""), ":00", fields["sec"])
    time = pc.binary_join_element_wise(hm, sec, "")
    base = pc.binary_join_element_wise(fields["date"], time, " ")  # "2017-11-25 08:30:00"
    # A real date and time formats back to the same text; strptime would roll
    # 2009-02-30 over to March and accept 25:00.
    parsed = pc.strptime(base, format=_ISO_FORMAT, unit="s", error_is_null=True)
    same = _mask(pc.equal(pc.strftime(parsed, format=_ISO_FORMAT), base).fill_null(False))
    secs = np.asarray(parsed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False))
    hours = _digits(fields["oh"])
    minutes = _digits(fields["om"])
    sign = np.where(_mask(pc.equal(parts.field("sign").fill_null(""), "-")), -1, 1)
    offset_ok = (hours <= 23) & (minutes <= 59)
    offset = sign * (hours * 3600 + minutes * 60)
    return secs - offset, matched & same & offset_ok


def _digits(text: pa.Array) -> np.ndarray:
    """Small non-negative integers from digit strings ("" is 0)."""
    filled = pc.if_else(pc.equal(text, ""), "0", text)
    return np.asarray(filled.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def robust_span(ts: np.ndarray, *, fence: float, min_margin: float) -> tuple[int, int]:
    """[lo, hi] of plausible timestamps: Tukey fences around the interquartile range.

    Activity logs are spread fairly evenly over their span, so the quartiles sit
    a quarter of the way in and the fences (`fence` = 1.5 is Tukey's) end half a
    span beyond either end. The margin is never narrower than `min_margin`.

    >>> robust_span(np.arange(1000), fence=1.5, min_margin=0)
    (-500, 1499)
    """
    if len(ts) == 0:
        return (0, 0)
    q1, q3 = np.quantile(ts, [0.25, 0.75])
    pad = max((q3 - q1) * fence, min_margin)
    return int(np.floor(q1 - pad)), int(np.ceil(q3 + pad))
