"""`multiembed.api`: tables and dict mappings into prepare, settings, inference, messages.

The happy path of every function runs as the module's doctests; these tests pin
what the wrappers add: in-memory tables, dict mappings, dataset inference,
settings, the recorded data directory and the lazy import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import multiembed.api as me
from multiembed.config import Config
from multiembed.errors import ConfigError, DataError
from multiembed.serve import RetrieveRequest

MAPPING = {"user": "who", "item": "what", "ts": "when", "integer_ids": False}
TINY = {
    "synthetic": {"n_users": 60, "n_items": 300, "n_topics": 4, "subtopics_per_topic": 2},
    "examples": {"seq_len": 8},
    "model": {"k": 2, "dim": 16, "id_dim": 8, "hidden_dim": 16},
    "train": {"batch_size": 32, "threads": 1},
}


def _log(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "who": [f"u{r % 4}" for r in range(n)],
            "what": [f"sku-{r % 9}" for r in range(n)],
            "when": [f"2024-05-01T10:{r:02d}:00+02:00" for r in range(n)],
        }
    )


def test_import_loads_neither_torch_nor_arrow() -> None:
    code = (
        "import sys, multiembed, multiembed.api as me; "
        "assert multiembed.api is me; "
        "print(sorted(m for m in ('torch', 'pyarrow', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dataframe_rows_are_quarantined_by_their_position(tmp_path: Path) -> None:
    log = _log()
    log.loc[5, "when"] = "yesterday"
    prepared = me.prepare(log, tmp_path / "data", mapping=MAPPING)
    assert prepared.counts["engagements"] == 39
    assert prepared.quarantined["engagements"] == 1
    q = pq.read_table(prepared.quarantine_file).to_pylist()
    assert [(r["table"], r["row"], r["column"], r["value"]) for r in q] == [
        ("engagements", 5, "ts", "yesterday")
    ]
    assert q[0]["source_file"].endswith("engagements.parquet")


def test_arrow_table_and_items_table(tmp_path: Path) -> None:
    items = pd.DataFrame({"what": [f"sku-{i}" for i in range(9)], "tags": ["a|b"] * 9})
    prepared = me.prepare(
        pa.Table.from_pandas(_log()),
        tmp_path / "data",
        mapping={**MAPPING, "items": {"topics": "tags"}},
        tables={"items": items},
    )
    assert prepared.counts["items"] == 9
    assert prepared.counts["topics"] == 2
    assert "items read from" in " ".join(prepared.report["notes"])


def test_a_table_arrow_cannot_convert_names_the_column(tmp_path: Path) -> None:
    log = _log()
    log["who"] = pd.Series(["u1", 7] * 20, dtype=object)
    with pytest.raises(DataError, match=r"source: DataFrame cannot be converted.*who"):
        me.prepare(log, tmp_path / "data", mapping=MAPPING)
    assert not (tmp_path / "data").exists()


def test_csv_path_with_a_dict_mapping_and_a_relative_items_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log().to_csv(tmp_path / "log.csv", index=False)
    pd.DataFrame({"what": [f"sku-{i}" for i in range(12)]}).to_csv(
        tmp_path / "products.csv", index=False
    )
    monkeypatch.chdir(tmp_path)
    mapping = {**MAPPING, "items": {"file": "products.csv"}}
    prepared = me.prepare("log.csv", "data", mapping=mapping)
    assert prepared.report["dataset"] == "csv"
    assert prepared.counts["items"] == 12  # the item file's, not the 9 of the log


def test_a_mapping_file_with_tables_keeps_its_relative_paths(tmp_path: Path) -> None:
    pd.DataFrame({"what": [f"sku-{i}" for i in range(12)]}).to_parquet(tmp_path / "items.parquet")
    (tmp_path / "m.toml").write_text(
        'user = "who"\nitem = "what"\nts = "when"\ninteger_ids = false\n'
        '[items]\nfile = "items.parquet"\n[user_topics]\ntopic = "topic"\n'
    )
    follows = pd.DataFrame({"who": ["u1", "u2"], "topic": ["a", "b"]})
    prepared = me.prepare(
        _log(), tmp_path / "data", mapping=tmp_path / "m.toml", tables={"user_topics": follows}
    )
    assert (prepared.counts["items"], prepared.counts["user_topics"]) == (12, 2)


def test_a_table_for_a_mapping_value_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"tables\['items'\]: the mapping's items = 'x' is not"):
        me.prepare(
            _log(), tmp_path / "data", mapping={**MAPPING, "items": "x"}, tables={"items": _log()}
        )


def test_tables_in_csv_are_written_as_csv(tmp_path: Path) -> None:
    _log().to_csv(tmp_path / "log.csv", index=False)
    items = pd.DataFrame({"what": [f"sku-{i}" for i in range(10)]})
    prepared = me.prepare(
        tmp_path / "log.csv", tmp_path / "data", mapping=MAPPING, tables={"items": items}
    )
    assert prepared.counts["items"] == 10


@pytest.mark.parametrize(
    ("source", "dataset", "message"),
    [
        ("log.json", None, r"dataset: not given, and the source log.json has no \.csv"),
        (pd.DataFrame({"a": [1]}), "csv", r'dataset = "csv": a table source is read as "parquet"'),
    ],
)
def test_dataset_inference_messages(
    tmp_path: Path, source: object, dataset: str | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        me.prepare(source, tmp_path / "data", dataset=dataset, mapping=MAPPING)


def test_tables_need_a_generic_dataset(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r'tables: only the csv and parquet datasets.*"synthetic"'
    ):
        me.prepare(None, tmp_path / "data", tables={"items": _log()})


def test_settings_a_dict_over_a_preset_and_a_config_object(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='preset = "mind": give a preset or a Config object'):
        me.prepare(None, tmp_path / "data", config=Config(), preset="mind")
    with pytest.raises(
        ConfigError,
        match=r'(?s)in the config dict over preset "mind" .*synthetic\.n_users = 0: must be > 0',
    ):
        me.prepare(None, tmp_path / "data", config={"synthetic": {"n_users": 0}}, preset="mind")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("api")
    me.prepare(None, root / "data", config=TINY)
    me.train(root / "data", root / "run", config=TINY, max_steps=2, progress=False)
    return root / "run", root / "data"


def test_evaluate_takes_the_eval_section_of_a_dict(tiny_run: tuple[Path, Path]) -> None:
    run, data = tiny_run
    report = me.evaluate(run, data, config={"eval": {"budget": 20}}, progress=False).report
    assert (report["eval_config"]["budget"], report["eval_config"]["k_ex"]) == (20, 5)


def test_retrieve_takes_ids_and_requests(tiny_run: tuple[Path, Path]) -> None:
    run, data = tiny_run
    by_id, by_history = me.retrieve(
        run,
        [2, RetrieveRequest(history=(1, 2, 3))],
        data=data,
        budget=6,
        index_factory="Flat",
    )
    assert (by_id.user_id, len(by_id), len(by_history)) == (2, 6, 6)
    assert by_history.user_id is None


def test_a_missing_recorded_data_directory_is_named(
    tiny_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, data = tiny_run
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    shutil.rmtree(data)
    try:
        with pytest.raises(DataError, match=rf"it was trained on, {data}, does not exist"):
            me.evaluate(run, progress=False)
        assert me.evaluate(run, moved, progress=False).report_file == run / "eval.json"
    finally:
        shutil.copytree(moved, data)
