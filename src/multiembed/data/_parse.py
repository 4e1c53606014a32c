"""Vectorised cell parsers: raw Arrow columns to typed numpy arrays plus a rule per bad cell.

Each parser returns `(values, bad)` where `bad` maps a rule to a boolean mask
of the rows that broke it (masks are disjoint; the first rule wins).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_INT_RE = r"^\s*[+-]?\d+\s*$"
_NUM_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"
# Zero-padded ISO-8601 forms; a parsed value must format back to the same text,
# which rejects impossible dates that strptime would roll over (2009-02-30).
_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S")

Bad = dict[str, np.ndarray]


def _mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _nulls(arr: pa.Array) -> np.ndarray:
    return _mask(arr.is_null())


def parse_ids(arr: pa.Array, *, integer: bool) -> tuple[pa.Array, Bad]:
    """Ids: int64 when `integer` (rule "not an integer id"), else stripped strings.

    >>> vals, bad = parse_ids(pa.array(["7", " 8", "x9", None]), integer=True)
    >>> vals.to_pylist()[:2], bad["not an integer id"].tolist(), bad["missing value"].tolist()
    ([7, 8], [False, False, True, False], [False, False, False, True])
    """
    missing = _nulls(arr)
    if pa.types.is_integer(arr.type):
        return arr.cast(pa.int64()), {"missing value": missing}
    if pa.types.is_floating(arr.type):
        whole = pc.equal(arr, pc.floor(arr)).fill_null(False)
        bad = ~_mask(whole) & ~missing
        safe = pc.if_else(pc.is_valid(whole) & whole, arr, 0.0)
        return safe.cast(pa.int64()), {"missing value": missing, "not an integer id": bad}
    text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    if not integer:
        empty = _mask(pc.equal(pc.utf8_length(text), 0).fill_null(False))
        return text, {"missing value": missing | empty}
    ok = _mask(pc.match_substring_regex(text, _INT_RE).fill_null(False))
    # Python's int() handles digits beyond int64; Arrow cast refuses them: check length.
    too_long = ok & _mask(pc.greater(pc.utf8_length(text), 18).fill_null(False))
    ok &= ~too_long
    values = pc.if_else(pa.array(ok), text, "0").cast(pa.int64())
    return values, {"missing value": missing, "not an integer id": ~ok & ~missing}


def parse_timestamps(arr: pa.Array) -> tuple[np.ndarray, Bad]:
    """Seconds since the epoch as int64 from integers, numbers or ISO-8601 date strings.

    >>> ts, bad = parse_timestamps(pa.array(["10", "2.5", "1970-01-02", "1970-02-30", "-3"]))
    >>> ts.tolist()[:3], bad["not a number or date"].tolist(), bad["negative timestamp"].tolist()
    ([10, 2, 86400], [False, False, False, True, False], [False, False, False, False, True])
    """
    missing = _nulls(arr)
    n = len(arr)
    if pa.types.is_integer(arr.type):
        ts = np.asarray(arr.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        unparsed = np.zeros(n, dtype=bool)
    elif pa.types.is_floating(arr.type):
        raw = np.asarray(arr.fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        unparsed = ~np.isfinite(raw) & ~missing
        ts = np.floor(np.where(unparsed, 0.0, raw)).astype(np.int64)
    else:
        text = pc.utf8_trim_whitespace(arr.cast(pa.string()))
        is_num = _mask(pc.match_substring_regex(text, _NUM_RE).fill_null(False))
        num = pc.if_else(pa.array(is_num), text, "0").cast(pa.float64())
        raw = np.asarray(num.to_numpy(zero_copy_only=False), dtype=np.float64)
        too_big = is_num & (np.abs(raw) > 1e15)
        ts = np.floor(np.where(too_big, 0.0, raw)).astype(np.int64)
        unparsed = (~is_num | too_big) & ~missing
        for fmt in _DATE_FORMATS:
            if not unparsed.any():
                break
            parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
            round_trip = pc.equal(pc.strftime(parsed, format=fmt), text)
            got = _mask(round_trip.fill_null(False)) & unparsed
            if got.any():
                secs = np.asarray(
                    parsed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
                )
                ts = np.where(got, secs, ts)
                unparsed &= ~got
    negative = (ts < 0) & ~unparsed & ~missing
    return ts, {
        "missing value": missing,
        "not a number or date": unparsed,
        "negative timestamp": negative,
    }


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
