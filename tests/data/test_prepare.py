"""Validation and prepare: each defect quarantined with its rule; nothing lost."""

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters.base import RawDataset
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.data.vocab import Vocab
from multiembed.errors import DataError

DAY = 86_400
T0 = 1_600_000_000


def _items_batches(rows):
    def stream():
        yield pa.RecordBatch.from_pylist(
            [
                {
                    "item_id": r[0],
                    "topics": r[1],
                    "vector": r[2],
                    "_file": "items.csv",
                    "_row": i + 2,
                }
                for i, r in enumerate(rows)
            ],
            schema=pa.schema(
                [
                    ("item_id", pa.string()),
                    ("topics", pa.list_(pa.string())),
                    ("vector", pa.list_(pa.float32())),
                    ("_file", pa.string()),
                    ("_row", pa.int64()),
                ]
            ),
        )

    return stream


ITEMS = [
    ("10", ["cats"], [0.1, 0.2]),
    ("11", ["dogs", "cats"], [0.3, 0.4]),
    ("12", [], None),  # missing features: kept, invalid
    ("13", ["fish"], [math.nan, 1.0]),  # NaN: quarantined
    ("14", ["fish"], [1.0, 2.0, 3.0]),  # wrong length: quarantined
    ("1x", ["fish"], [1.0, 2.0]),  # non-integer id
    ("10", ["dup"], [1.0, 2.0]),  # duplicate id
]

ENGAGEMENTS = f"""user,item,ts,action,topic
1,10,{T0},click,
1,11,{T0 + 60},save,cats
1,11,{T0 + 60},save,cats
2,10,{T0 + DAY},click,
2,12,{T0 + 2 * DAY},hide,
u3,10,{T0},click,
3,10,soon,click,
3,10,-5,click,
3,10,{T0 + 100},teleport,
3,99,{T0 + 100},click,
3,13,{T0 + 100},click,
3,10,{T0 - 3000 * DAY},click,
3,10,{T0 + 3 * DAY},click,dogs
3,11,{T0 + 3 * DAY}"""

FOLLOWS = f"""user,topic,followed_at,unfollowed_at
1,cats,{T0 - DAY},
4,dogs,{T0 - DAY},{T0}
4,fish,{T0},{T0 - DAY}
"""


def _raw(tmp_path: Path, quarantine: Quarantine) -> RawDataset:
    log = tmp_path / "log.csv"
    log.write_text(ENGAGEMENTS)
    follows = tmp_path / "follows.csv"
    follows.write_text(FOLLOWS)

    def engagements():
        for b in read_delimited(
            log,
            table="engagements",
            quarantine=quarantine,
            columns=["user", "item", "ts", "action", "topic"],
        ):
            yield pa.RecordBatch.from_arrays(
                b.columns,
                names=["user_id", "item_id", "ts", "action", "source_topic", "_file", "_row"],
            )

    def user_topics():
        for b in read_delimited(
            follows,
            table="user_topics",
            quarantine=quarantine,
            columns=["user", "topic", "followed_at", "unfollowed_at"],
        ):
            unf = b.column("unfollowed_at")
            unf = pa.compute.if_else(pa.compute.equal(unf, ""), pa.scalar(None, pa.string()), unf)
            yield pa.RecordBatch.from_arrays(
                [b.column(0), b.column(1), b.column(2), unf, b.column(4), b.column(5)],
                names=["user_id", "topic", "followed_at", "unfollowed_at", "_file", "_row"],
            )

    return RawDataset(
        name="fixture",
        items=_items_batches(ITEMS),
        engagements=engagements,
        user_topics=user_topics,
        vector_dim=2,
    )


@pytest.fixture
def prepared(tmp_path: Path):
    q = Quarantine()
    out = tmp_path / "out"
    report = prepare(_raw(tmp_path, q), out, config=DataConfig(), quarantine=q)
    return out, report


def test_every_defect_is_quarantined_with_its_rule(prepared):
    out, _ = prepared
    rows = pq.read_table(out / "quarantine.parquet").to_pylist()
    # A rule's text may go on to name the likely fix in brackets; its name comes first.
    got = {(r["table"], r["row"], r["column"], r["rule"].split(" (")[0], r["value"]) for r in rows}
    log = str(out.parent / "log.csv")
    assert got == {
        ("items", 5, "vector", "NaN or inf in vector", "[nan, 1.0]"),
        ("items", 6, "vector", "wrong vector length", "[1.0, 2.0, 3.0]"),
        ("items", 7, "item_id", "not an integer id", "1x"),
        ("items", 8, "item_id", "duplicate item_id", "10"),
        ("engagements", 7, "user_id", "not an integer id", "u3"),
        ("engagements", 8, "ts", "not a number or date", "soon"),
        ("engagements", 9, "ts", "negative timestamp", "-5"),
        ("engagements", 10, "action", "unknown action kind", "teleport"),
        ("engagements", 11, "item_id", "item_id not in the item table", "99"),
        ("engagements", 12, "item_id", "item_id not in the item table", "13"),
        ("engagements", 4, "*", "duplicate engagement row", "1"),
        ("engagements", 15, "*", "truncated final line", f"3,11,{T0 + 3 * DAY}"),
        ("user_topics", 4, "unfollowed_at", "unfollowed before followed", str(T0 - DAY)),
    } | {
        (
            "engagements",
            13,
            "ts",
            next(
                r["rule"].split(" (")[0]
                for r in rows
                if r["row"] == 13 and r["table"] == "engagements"
            ),
            str(T0 - 3000 * DAY),
        )
    }
    far = next(r for r in rows if r["row"] == 13 and r["table"] == "engagements")
    assert far["rule"].startswith("timestamp far outside the data's span")
    assert {r["source_file"] for r in rows if r["table"] == "engagements"} == {log}


def test_accounting_holds_for_every_table(prepared):
    out, report = prepared
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == report
    for name, t in report["tables"].items():
        assert t["rows_in"] == t["rows_kept"] + t["rows_quarantined"], name
    assert report["tables"]["engagements"] == {
        "rows_in": 14,
        "rows_kept": 5,
        "rows_quarantined": 9,
        "quarantined_by_rule": report["tables"]["engagements"]["quarantined_by_rule"],
    }
    assert report["rows_in"] == report["rows_kept"] + report["rows_quarantined"]
    assert report["counts"] == {
        "users": 4,
        "items": 3,
        "engagements": 5,
        "topics": 2,
        "user_topics": 2,
    }


def test_canonical_tables_use_contiguous_ids_that_map_back(prepared):
    out, _ = prepared
    eng = pq.read_table(out / "engagements.parquet")
    items = pq.read_table(out / "items.parquet")
    users = Vocab.load(out / "vocab" / "users.parquet")
    item_vocab = Vocab.load(out / "vocab" / "items.parquet")
    topics = Vocab.load(out / "vocab" / "topics.parquet")
    assert users.raw.to_pylist() == [1, 2, 3, 4]  # 4 only follows topics: a new user
    assert item_vocab.raw.to_pylist() == [10, 11, 12]
    assert topics.raw.to_pylist() == ["cats", "dogs"]  # "fish" only on quarantined rows
    assert items.column("item_id").to_pylist() == [0, 1, 2]
    assert items.column("valid").to_pylist() == [True, True, False]
    assert items.column("topics").to_pylist() == [[0], [1, 0], []]
    rows = eng.to_pylist()
    raw_pairs = [
        (users.decode([r["user_id"]])[0].as_py(), item_vocab.decode([r["item_id"]])[0].as_py())
        for r in rows
    ]
    assert raw_pairs == [(1, 10), (1, 11), (2, 10), (2, 12), (3, 10)]
    assert eng.schema.field("source_topic").type == pa.int32()
    assert [r["source_topic"] for r in rows] == [None, 0, None, None, 1]
    assert [r["action"] for r in rows][3] == "hide"


def test_nothing_valid_is_a_clear_error(tmp_path: Path):
    raw = RawDataset(
        name="empty",
        items=_items_batches([("x", [], None)]),
        engagements=lambda: iter(()),
    )
    with pytest.raises(DataError, match="no valid item rows") as err:
        prepare(raw, tmp_path / "o", config=DataConfig())
    assert "integer_ids" in str(err.value)  # the likely fix for an id like "x"
    quarantined = pq.read_table(tmp_path / "o" / "quarantine.parquet").to_pylist()
    assert [(r["table"], r["column"], r["value"]) for r in quarantined] == [
        ("items", "item_id", "x")
    ]
    assert json.loads((tmp_path / "o" / "report.json").read_text())["rows_quarantined"] == 1


def _engagement_batches(rows):
    def stream():
        yield pa.RecordBatch.from_pylist(
            [
                {
                    "user_id": u,
                    "item_id": i,
                    "ts": t,
                    "action": a,
                    "_file": "log.csv",
                    "_row": k + 2,
                }
                for k, (u, i, t, a) in enumerate(rows)
            ],
            schema=pa.schema(
                [(name, pa.string()) for name in ("user_id", "item_id", "ts", "action", "_file")]
                + [("_row", pa.int64())]
            ),
        )

    return stream


@pytest.mark.parametrize(
    ("rows", "rule", "fix"),
    [
        (
            [("u1", "10", str(T0), "click"), ("u2", "11", str(T0), "click")],
            "user_id",
            "integer_ids",
        ),
        (
            [("1", "10", "31/01/2024", "click"), ("2", "10", "01/02/2024", "click")],
            "ts",
            "ISO-8601",
        ),
        ([("1", "10", str(T0), "clicked")], "action", "action_map"),
    ],
)
def test_when_every_row_fails_report_and_quarantine_are_written_and_the_fix_named(
    tmp_path: Path, rows, rule, fix
):
    raw = RawDataset(
        name="shop",
        items=_items_batches(ITEMS[:2]),
        engagements=_engagement_batches(rows),
        vector_dim=2,
    )
    out = tmp_path / "out"
    with pytest.raises(DataError) as err:
        prepare(raw, out, config=DataConfig())
    message = str(err.value)
    assert message.startswith(f"shop: no valid engagement rows: all {len(rows)} were quarantined")
    assert fix in message
    assert str(out / "quarantine.parquet") in message
    assert str(out / "report.json") in message

    quarantined = pq.read_table(out / "quarantine.parquet").to_pylist()
    assert [(r["table"], r["row"], r["column"]) for r in quarantined] == [
        ("engagements", k + 2, rule) for k in range(len(rows))
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["error"] in message
    assert report["tables"]["engagements"]["rows_in"] == len(rows)
    assert report["tables"]["engagements"]["rows_quarantined"] == len(rows)
    assert report["tables"]["items"]["rows_kept"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["quarantine.parquet", "report.json"]
