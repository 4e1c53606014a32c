"""Prepared tables carry checksums; every reader of the library checks them."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiembed.config import DataConfig, EvalConfig, ExamplesConfig, SplitConfig
from multiembed.data.prepare import prepare
from multiembed.data.prepared import read_prepared_table
from multiembed.errors import DataError, InputFileError
from tests.data.prepared_helpers import tiny_raw


@pytest.fixture
def prepared(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    prepare(tiny_raw(6), out, config=DataConfig())
    return out


def _flip(path: Path) -> None:
    """Flips one byte in the middle of the file (inside a data page), keeping its size."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_manifest_lists_every_file_prepare_wrote(prepared: Path):
    manifest = json.loads((prepared / "manifest.json").read_text())
    on_disk = {
        p.relative_to(prepared).as_posix(): p
        for p in prepared.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert sorted(manifest["files"]) == sorted(on_disk)
    assert "vocab/items.parquet" in manifest["files"]
    for name, entry in manifest["files"].items():
        data = on_disk[name].read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.parametrize("name", ["engagements.parquet", "items.parquet", "user_topics.parquet"])
def test_a_flipped_byte_is_refused_by_file(prepared: Path, name: str):
    assert read_prepared_table(prepared, name).num_rows >= 0
    _flip(prepared / name)
    with pytest.raises(DataError) as err:
        read_prepared_table(prepared, name)
    assert str(err.value).startswith(f"{prepared / name}: does not match its SHA-256")
    assert "re-run `multiembed prepare`" in str(err.value)


def test_a_truncated_table_is_refused_by_file(prepared: Path):
    path = prepared / "items.parquet"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"items\.parquet: \d+ bytes, but prepare wrote \d+"):
        read_prepared_table(prepared, "items.parquet")


def test_train_eval_and_serve_read_through_the_check(prepared: Path):
    from multiembed.eval import load_eval_data
    from multiembed.serve._bundle import _histories, _item_valid
    from multiembed.train import load_item_features

    _flip(prepared / "items.parquet")
    _flip(prepared / "engagements.parquet")
    with pytest.raises(DataError, match=r"items\.parquet: does not match"):
        load_item_features(prepared)
    with pytest.raises(DataError, match=r"engagements\.parquet: does not match"):
        load_eval_data(
            prepared, split=SplitConfig(), examples=ExamplesConfig(), config=EvalConfig()
        )
    with pytest.raises(DataError, match=r"items\.parquet: does not match"):
        _item_valid(prepared, 6)
    with pytest.raises(DataError, match=r"engagements\.parquet: does not match"):
        _histories(prepared, 7, 6, np.ones(6, dtype=bool), seq_len=4, width=2)


def test_a_directory_prepared_without_checksums_is_refused(prepared: Path):
    (prepared / "manifest.json").unlink()
    with pytest.raises(DataError, match=r"has no manifest\.json \(prepared without checksums\)"):
        read_prepared_table(prepared, "items.parquet")


def test_a_damaged_manifest_is_refused(prepared: Path):
    (prepared / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json: damaged"):
        read_prepared_table(prepared, "items.parquet")


def test_a_failed_prepare_is_named_when_its_directory_is_read(tmp_path: Path):
    raw = tiny_raw(3)
    failing = type(raw)(name="x", items=raw.items, engagements=lambda: iter(()))
    with pytest.raises(DataError):
        prepare(failing, tmp_path / "data", config=DataConfig())
    pq.write_table(pa.table({"item_id": [0]}), tmp_path / "data" / "items.parquet")
    with pytest.raises(DataError, match=r"the prepare that wrote .* failed \(x: no valid engagem"):
        read_prepared_table(tmp_path / "data", "items.parquet")


def test_tables_written_by_another_tool_are_read_as_they_are(tmp_path: Path):
    pq.write_table(
        pa.table({"item_id": [0, 1], "valid": [True, False]}), tmp_path / "items.parquet"
    )
    table = read_prepared_table(tmp_path, "items.parquet", columns=["valid"])
    assert table.column("valid").to_pylist() == [True, False]
    (tmp_path / "engagements.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputFileError, match=r"engagements\.parquet: is not a readable Parquet"):
        read_prepared_table(tmp_path, "engagements.parquet")
    with pytest.raises(InputFileError, match=r"user_topics\.parquet: missing"):
        read_prepared_table(tmp_path, "user_topics.parquet")
