"""Cell parsers: every bad cell gets a rule that names the likely fix."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from multiembed.data._parse import (
    LATEST_TS,
    NOT_INTEGER_ID,
    NOT_TIME,
    RESERVED_ID_RULE,
    TOO_LATE,
    parse_ids,
    parse_timestamps,
)


def _utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp())


def _rule_of(bad: dict[str, np.ndarray], i: int) -> str | None:
    hits = [rule for rule, mask in bad.items() if mask[i]]
    assert len(hits) <= 1, hits  # the masks are disjoint
    return hits[0] if hits else None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2023-11-14", _utc(2023, 11, 14)),
        ("2023-11-14 22:13:20", _utc(2023, 11, 14, 22, 13, 20)),
        ("2023-11-14T22:13:20", _utc(2023, 11, 14, 22, 13, 20)),
        ("2023-11-14T22:13:20Z", _utc(2023, 11, 14, 22, 13, 20)),
        ("2023-11-14T22:13:20z", _utc(2023, 11, 14, 22, 13, 20)),
        ("2023-11-14T22:13:20+00:00", _utc(2023, 11, 14, 22, 13, 20)),
        ("2023-11-14T22:13:20.987Z", _utc(2023, 11, 14, 22, 13, 20)),  # fraction dropped
        ("2023-11-14T22:13Z", _utc(2023, 11, 14, 22, 13)),
        ("2023-11-14T22:13:20+05:30", _utc(2023, 11, 14, 16, 43, 20)),
        ("2023-11-14T22:13:20-0800", _utc(2023, 11, 15, 6, 13, 20)),
        ("2023-11-14T22:13:20+01", _utc(2023, 11, 14, 21, 13, 20)),
        (" 2023-11-14T22:13:20Z ", _utc(2023, 11, 14, 22, 13, 20)),
    ],
)
def test_iso_times_with_utc_offsets_are_read(text, seconds):
    ts, bad = parse_timestamps(pa.array([text]))
    assert _rule_of(bad, 0) is None
    assert ts.tolist() == [seconds]


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-30",  # no such day
        "2023-11-14T25:00:00Z",  # no such hour
        "2023-11-14T22:13:20+24:00",  # no such offset
        "2023-11-14Z",  # an offset needs a time
        "14/11/2023",
        "soon",
        "",
    ],
)
def test_other_text_is_not_a_time_and_the_rule_lists_the_accepted_forms(text):
    _, bad = parse_timestamps(pa.array([text]))
    assert _rule_of(bad, 0) == NOT_TIME
    assert "seconds since 1970" in NOT_TIME
    assert "2017-11-25T08:30:00Z" in NOT_TIME


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["1700000000000", "1700000000"]),  # text
        pa.array([1_700_000_000_000, 1_700_000_000], pa.int64()),  # Parquet integers
        pa.array([1.7e12, 1.7e9], pa.float64()),
        pa.array(["1e300", "1700000000"]),  # far beyond int64
    ],
)
def test_millisecond_timestamps_are_quarantined_with_a_hint(column):
    ts, bad = parse_timestamps(column)
    assert _rule_of(bad, 0) == TOO_LATE
    assert "milliseconds" in TOO_LATE
    assert _rule_of(bad, 1) is None
    assert ts[1] == 1_700_000_000


def test_the_latest_accepted_second_is_just_before_the_year_3000():
    _, bad = parse_timestamps(pa.array([LATEST_TS - 1, LATEST_TS], pa.int64()))
    assert [_rule_of(bad, 0), _rule_of(bad, 1)] == [None, TOO_LATE]
    assert dt.datetime.fromtimestamp(LATEST_TS, dt.UTC).year == 3000


def test_string_ids_name_the_integer_ids_setting():
    _, bad = parse_ids(pa.array(["user7"]), integer=True)
    assert _rule_of(bad, 0) == NOT_INTEGER_ID
    assert "integer_ids = false" in NOT_INTEGER_ID


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["-1", " -1 ", "+1"]),
        pa.array([-1, -1, 1], pa.int64()),
        pa.array([-1, -1, 1], pa.int32()),
        pa.array([-1.0, -1.0, 1.0], pa.float64()),
    ],
)
def test_raw_id_minus_one_is_reserved(column):
    values, bad = parse_ids(column, integer=True)
    assert [_rule_of(bad, i) for i in range(3)] == [RESERVED_ID_RULE, RESERVED_ID_RULE, None]
    assert values.to_pylist()[2] == 1


def test_other_negative_ids_and_string_ids_are_kept():
    _, bad = parse_ids(pa.array(["-2", "0"]), integer=True)
    assert [_rule_of(bad, i) for i in range(2)] == [None, None]
    _, bad = parse_ids(pa.array(["-1"]), integer=False)  # a string id, never a padding value
    assert _rule_of(bad, 0) is None


def test_float_ids_beyond_int64_are_not_ids():
    _, bad = parse_ids(pa.array([1e30, 2.5, 3.0]), integer=True)
    assert [_rule_of(bad, i) for i in range(3)] == [NOT_INTEGER_ID, NOT_INTEGER_ID, None]
