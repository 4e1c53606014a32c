"""Side files of the generic adapters: item features and titles, topic names, followed topics."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig
from multiembed.data.adapters._side_tables import DUPLICATE_TOPIC, NOT_A_NUMBER
from multiembed.data.adapters.generic import (
    ColumnMapping,
    CsvAdapter,
    ItemsMapping,
    ParquetAdapter,
    TopicsMapping,
    UserTopicsMapping,
    load_generic_adapter,
)
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.data.vocab import Vocab
from multiembed.errors import ConfigError, InputFileError

LOG = (
    "customer,sku,time,surface\n"
    "ann,s1,2024-03-01T10:00:00Z,shoes\n"
    "ann,s2,2024-03-01T12:00:00+02:00,\n"  # 10:00 UTC
    "bob,s1,2024-03-02T10:00:00-05:00,hats\n"  # 15:00 UTC
    "bob,s3,2024-03-02 16:00,\n"
    "bob,s4,2024-03-03T09:00:00+05:30,\n"  # item s4 is quarantined in the item file
)
ITEMS = (
    "sku,title,cats,f0,f1,brand\n"
    "s1,Red shoe,shoes,0.5,1.5,acme\n"
    "s2,Blue hat,hats|shoes,1,-2e-1,\n"  # no brand: kept, invalid
    "s3,Grey bag,bags,,2,zeta\n"  # no f0: kept, invalid
    "s4,Odd one,bags,x,1,acme\n"  # f0 is not a number: quarantined
)
TOPICS = (
    "topic,label,parent\nshoes,Shoes,wear\nhats,Hats,wear\nwear,Wear,\nhats,Again,\n,Nameless,\n"
)
FOLLOWS = (
    "customer,topic,since,until\nann,hats,2024-02-01T00:00:00Z,\nbob,bags,1706745600,2024-01-01\n"
)

MAPPING = ColumnMapping(user="customer", item="sku", ts="time", source_topic="surface")
ITEMS_SPEC = dict(topics="cats", title="title", vector=("f0", "f1"), categorical=("brand",))
T0 = 1_709_287_200  # 2024-03-01T10:00:00Z


def _files(tmp: Path) -> dict[str, Path]:
    paths = {}
    for name, text in (("log", LOG), ("items", ITEMS), ("topics", TOPICS), ("follows", FOLLOWS)):
        paths[name] = tmp / f"{name}.csv"
        paths[name].write_text(text, encoding="utf-8")
    return paths


def _adapter(files: dict[str, Path], cls: type = CsvAdapter) -> CsvAdapter | ParquetAdapter:
    return cls(
        MAPPING,
        items=ItemsMapping(file=files["items"], **ITEMS_SPEC),
        topics=TopicsMapping(file=files["topics"], id="topic", name="label", parent="parent"),
        user_topics=UserTopicsMapping(
            file=files["follows"], topic="topic", followed_at="since", unfollowed_at="until"
        ),
        batch_rows=2,
    )


def _prepare(adapter, source: Path, out: Path) -> tuple[dict, list[dict]]:
    q = Quarantine()
    report = prepare(adapter.read(source, q), out, config=DataConfig(), quarantine=q)
    return report, pq.read_table(out / "quarantine.parquet").to_pylist()


def _check_prepared(out: Path, report: dict, rows: list[dict], log_name: str) -> None:
    items = pq.read_table(out / "items.parquet").to_pylist()
    vocab = Vocab.load(out / "vocab" / "items.parquet").raw.to_pylist()
    assert vocab == ["s1", "s2", "s3"]
    assert [i["vector"] for i in items] == [[0.5, 1.5], [1.0, pytest.approx(-0.2)], None]
    assert [i["valid"] for i in items] == [True, False, False]
    brands = Vocab.load(out / "vocab" / "categorical_0.parquet").raw.to_pylist()
    codes = [i["categorical"][0] for i in items]
    assert [None if c is None else brands[c] for c in codes] == ["acme", None, "zeta"]
    titles = pq.read_table(out / "vocab" / "item_titles.parquet").to_pylist()
    assert titles == [
        {"id": 0, "title": "Red shoe"},
        {"id": 1, "title": "Blue hat"},
        {"id": 2, "title": "Grey bag"},
    ]
    topics = Vocab.load(out / "vocab" / "topics.parquet").raw.to_pylist()
    names = pq.read_table(out / "vocab" / "topic_names.parquet").to_pylist()
    named = {topics[n["id"]]: n["name"] for n in names}
    assert named == {"bags": "bags", "hats": "Hats", "shoes": "Shoes"}  # "wear" names no topic
    follows = pq.read_table(out / "user_topics.parquet").to_pylist()
    users = Vocab.load(out / "vocab" / "users.parquet").raw.to_pylist()
    # bob's follow ends before it starts: quarantined (see below)
    assert [(users[f["user_id"]], topics[f["topic"]]) for f in follows] == [("ann", "hats")]
    assert follows[0]["followed_at"] == 1_706_745_600  # 2024-02-01T00:00:00Z
    eng = pq.read_table(out / "engagements.parquet").to_pylist()
    assert sorted(e["ts"] for e in eng) == [T0, T0, T0 + 86_400 + 5 * 3600, T0 + 86_400 + 6 * 3600]
    logged = {(users[e["user_id"]], e["source_topic"]) for e in eng}
    assert ("ann", topics.index("shoes")) in logged
    assert ("bob", topics.index("hats")) in logged

    by_rule = {(r["table"], r["column"], r["rule"]): r for r in rows}
    bad = by_rule[("items", "f0", NOT_A_NUMBER)]
    assert (bad["value"], Path(bad["source_file"]).stem) == ("x", "items")
    assert by_rule[("topics", "topic", DUPLICATE_TOPIC)]["value"] == "hats"
    assert ("topics", "topic", "missing value (every topic row needs its key)") in by_rule
    unfollow = by_rule[("user_topics", "unfollowed_at", "unfollowed before followed")]
    assert unfollow["value"] == "2024-01-01"
    assert ("engagements", "item_id", "item_id not in the item table") in by_rule
    tables = report["tables"]
    assert tables["topics"] == {
        "rows_in": 5,
        "rows_kept": 3,
        "rows_quarantined": 2,
        "quarantined_by_rule": tables["topics"]["quarantined_by_rule"],
    }
    for table in tables.values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    assert (tables["items"]["rows_in"], tables["items"]["rows_kept"]) == (4, 3)
    assert (tables["user_topics"]["rows_kept"], tables["engagements"]["rows_kept"]) == (1, 4)
    assert any(
        log_name not in note and "followed topics read from" in note for note in report["notes"]
    )


def test_csv_side_files_carry_features_titles_topics_and_follows(tmp_path):
    files = _files(tmp_path)
    report, rows = _prepare(_adapter(files), files["log"], tmp_path / "out")
    _check_prepared(tmp_path / "out", report, rows, "log.csv")


def _to_parquet(csv: Path, types: dict[str, pa.DataType] | None = None) -> Path:
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(
        csv,
        convert_options=pa_csv.ConvertOptions(
            column_types=types or {}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    path = csv.with_suffix(".parquet")
    pq.write_table(table, path)
    return path


def test_parquet_side_files_with_typed_columns(tmp_path):
    csv = _files(tmp_path)
    strings = {"customer": pa.string(), "topic": pa.string(), "since": pa.string()}
    files = {
        "log": _to_parquet(csv["log"], {"time": pa.string(), "surface": pa.string()}),
        # f0 and f1 stay text (a float column could not hold "x"), brand is text
        "items": _to_parquet(csv["items"], {"f0": pa.string(), "brand": pa.string()}),
        "topics": _to_parquet(csv["topics"], {"topic": pa.string(), "parent": pa.string()}),
        "follows": _to_parquet(csv["follows"], {**strings, "until": pa.string()}),
    }
    report, rows = _prepare(_adapter(files, ParquetAdapter), files["log"], tmp_path / "out")
    _check_prepared(tmp_path / "out", report, rows, "log.parquet")
    assert {r["row"] for r in rows if r["column"] == "f0"} == {3}  # 0-based record index


def test_follows_without_a_time_count_from_zero_and_default_to_the_log_user(tmp_path):
    files = _files(tmp_path)
    follows = UserTopicsMapping(file=files["follows"], topic="topic")
    raw = CsvAdapter(MAPPING, user_topics=follows).read(files["log"], Quarantine())
    batch = pa.Table.from_batches(list(raw.user_topics()))
    assert batch.column("user_id").to_pylist() == ["ann", "bob"]
    assert batch.column("followed_at").to_pylist() == [0, 0]
    assert any("followed_at" in note for note in raw.notes)


def test_a_side_file_without_a_mapped_column_is_refused_by_name(tmp_path):
    files = _files(tmp_path)
    spec = ItemsMapping(file=files["items"], vector=("f0", "f9"))
    with pytest.raises(InputFileError, match=r"items\.csv.*f9"):
        CsvAdapter(MAPPING, items=spec).read(files["log"], Quarantine())
    follows = UserTopicsMapping(file=tmp_path / "absent.csv", topic="topic")
    with pytest.raises(InputFileError, match=r"absent\.csv: file not found"):
        CsvAdapter(MAPPING, user_topics=follows).read(files["log"], Quarantine())


def test_side_mappings_report_every_problem():
    with pytest.raises(ConfigError) as err:
        ItemsMapping(file=Path("i.csv"), id="", vector="f0", categorical=("a", "a"))
    text = str(err.value)
    assert "items.id = '': must be a non-empty column name or left out" in text
    assert "items.vector = 'f0': must be a list of column names" in text
    assert "items.categorical = ('a', 'a'): names a column more than once" in text
    with pytest.raises(ConfigError, match=r"topics\.name = '': must be a non-empty column name"):
        TopicsMapping(file=Path("t.csv"), id="topic", name="")


def test_mapping_file_tables(tmp_path):
    files = _files(tmp_path)
    toml = tmp_path / "mapping.toml"
    toml.write_text(
        'user = "customer"\nitem = "sku"\nts = "time"\nsource_topic = "surface"\n'
        '[items]\nfile = "items.csv"\ntopics = "cats"\ntitle = "title"\n'
        'vector = ["f0", "f1"]\ncategorical = ["brand"]\n'
        '[topics]\nfile = "topics.csv"\nid = "topic"\nname = "label"\nparent = "parent"\n'
        '[user_topics]\nfile = "follows.csv"\ntopic = "topic"\nfollowed_at = "since"\n'
        'unfollowed_at = "until"\n'
    )
    adapter = load_generic_adapter("csv", toml, batch_rows=2)
    report, rows = _prepare(adapter, files["log"], tmp_path / "out")
    _check_prepared(tmp_path / "out", report, rows, "log.csv")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[items]\nfile = "i.csv"\nvectors = ["a"]\n', "items.vectors = ['a']: unknown key"),
        ('[topics]\nfile = "t.csv"\nname = "n"\n', "topics.id: missing"),
        ('[user_topics]\ntopic = "t"\n', "user_topics.file: missing"),
        ("[items]\nfile = 3\n", "items.file = 3: must be a path"),
        ('items_file = "a.csv"\n[items]\nfile = "b.csv"\n', "give the item file once"),
        ('user_topics = "f.csv"\n', "user_topics = 'f.csv': must be a table"),
    ],
)
def test_mapping_file_table_errors_name_the_key(tmp_path, text, message):
    toml = tmp_path / "m.toml"
    toml.write_text('user = "u"\nitem = "i"\nts = "t"\n' + text)
    with pytest.raises(ConfigError) as err:
        load_generic_adapter("csv", toml, batch_rows=10)
    assert message in str(err.value)
    assert str(toml) in str(err.value)
