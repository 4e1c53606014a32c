"""Export: raw ids in, raw ids out; unknown raw item ids are counted and quarantined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import multiembed
from multiembed.data.vocab import Vocab
from multiembed.errors import InputFileError
from multiembed.export import export_run
from multiembed.train import load_run, train
from tests.experiments.experiment_helpers import tiny_config


@pytest.fixture(scope="module")
def run_dir(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    train(tiny_config(name="dcm"), tiny_data, out, progress=False, resume=False)
    return out


def test_items_under_raw_ids(run_dir: Path, tmp_path: Path):
    summary = export_run(run_dir, tmp_path)
    table = pq.read_table(tmp_path / "items.parquet")
    raw = Vocab.load(run_dir / "vocab" / "items.parquet").raw.to_pylist()
    run = load_run(run_dir)
    assert table.column("item_id").to_pylist() == raw[: summary["n_items"]]
    emb = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    assert emb.shape == (summary["n_items"], run.config.model.dim)
    expected = run.model.embed_items(torch.arange(3)).detach().numpy()
    np.testing.assert_allclose(emb[:3], expected, rtol=1e-5, atol=1e-6)


def test_users_from_raw_histories_with_unknown_items(run_dir: Path, tmp_path: Path):
    raw = Vocab.load(run_dir / "vocab" / "items.parquet").raw.to_pylist()
    csv = tmp_path / "histories.csv"
    lines = ["user_id,item_id,timestamp"]
    lines += [f"alice,{raw[i]},{100 + i}" for i in range(5)]
    lines += ["alice,no-such-item,200", "bob,no-such-item,1", "bob,999999999,2"]
    lines += [f"carol,{raw[7]},5"]
    csv.write_text("\n".join(lines) + "\n")
    summary = export_run(run_dir, tmp_path / "out", users_csv=csv)
    assert summary["rows_in"] == 9
    assert summary["rows_used"] == 6
    assert summary["unknown_item_rows"] == 3
    assert summary["unknown_item_ids"] == 2
    assert summary["users_without_known_items"] == 1  # bob
    users = pq.read_table(tmp_path / "out" / "users.parquet").to_pylist()
    assert {u["user_id"] for u in users} == {"alice", "bob", "carol"}
    assert all(len(u["embedding"]) == 16 and u["importance"] >= 0 for u in users)
    alice = [u for u in users if u["user_id"] == "alice"]
    assert sorted(u["slot"] for u in alice) == list(range(len(alice)))
    quarantine = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    assert [(q["line"], q["user_id"], q["item_id"]) for q in quarantine] == [
        (7, "alice", "no-such-item"),
        (8, "bob", "no-such-item"),
        (9, "bob", "999999999"),
    ]


def test_missing_history_file(run_dir: Path, tmp_path: Path):
    with pytest.raises(InputFileError, match="missing"):
        export_run(run_dir, tmp_path, users_csv=tmp_path / "nope.csv")


def _histories(run_dir: Path, path: Path) -> Path:
    raw = Vocab.load(run_dir / "vocab" / "items.parquet").raw.to_pylist()
    rows = [f"u{u},{raw[(3 * u + i) % 20]},{i}" for u in range(4) for i in range(6)]
    path.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    return path


def test_vectors_are_fixed_size_lists_with_metadata(run_dir: Path, tmp_path: Path):
    summary = export_run(run_dir, tmp_path, users_csv=_histories(run_dir, tmp_path / "h.csv"))
    d = summary["dim"]
    expected = {
        b"metric": b"inner_product",
        b"dimension": str(d).encode(),
        b"normalisation": b"l2",
        b"model_version": summary["model_version"].encode(),
        b"multiembed_version": multiembed.__version__.encode(),
    }
    for name in ("items.parquet", "users.parquet"):
        schema = pq.read_schema(tmp_path / name)
        assert schema.field("embedding").type == pa.list_(pa.float32(), d), name
        assert {k: v for k, v in (schema.metadata or {}).items() if k in expected} == expected
        column = pq.read_table(tmp_path / name).column("embedding").combine_chunks()
        emb = column.flatten().to_numpy().reshape(len(column), d)  # [N, D]
        assert emb.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert (summary["metric"], summary["normalisation"]) == ("inner_product", "l2")


def test_normalisation_is_measured_not_assumed():
    from multiembed.export import normalisation

    assert normalisation(np.eye(3, dtype=np.float32)) == "l2"
    assert normalisation(np.array([[3.0, 4.0]], dtype=np.float32)) == "none"
    assert normalisation(np.array([[1.0, 0.0], [0.5, 0.0]], dtype=np.float32)) == "none"
    assert normalisation(np.zeros((0, 4), dtype=np.float32)) == "none"  # nothing to measure
