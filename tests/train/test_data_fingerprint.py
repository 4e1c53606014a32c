"""A run knows its data: every command given a run and a data directory refuses another dataset.

The run's manifest records the fingerprint of the data it was trained on (its
vocabularies and item table); `load_run(run, data_dir=...)` compares it, and
evaluate, export, serve and retrieve all go through it. The refusal names both
directories and both fingerprints.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from multiembed.cli.main import app
from multiembed.config import Config, SyntheticConfig, parse, to_dict
from multiembed.data import prepare_dataset
from multiembed.export import export_run
from multiembed.serve import build_bundle
from multiembed.train import RunIntegrityError, load_run, train
from tests.train.train_helpers import TINY_WORLD, tiny_config


@pytest.fixture(scope="module")
def run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fingerprint") / "run"
    train(tiny_config(max_steps=5), tiny_data, out, progress=False)
    return out


@pytest.fixture(scope="module")
def other_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another synthetic world of the same sizes (same item and user id ranges)."""
    out = tmp_path_factory.mktemp("other") / "data"
    world = parse(SyntheticConfig, {**to_dict(TINY_WORLD), "seed": 7})
    prepare_dataset("synthetic", None, out, config=Config(synthetic=world))
    return out


def _fingerprint(run: Path) -> str:
    return json.loads((run / "manifest.json").read_text())["data"]["fingerprint"]


def test_another_dataset_is_refused_naming_both(run: Path, tiny_data: Path, other_data: Path):
    with pytest.raises(RunIntegrityError) as err:
        load_run(run, data_dir=other_data)
    message = str(err.value)
    assert message.startswith(f"{other_data}: not the data the run {run} was trained on")
    assert f"the run's is {_fingerprint(run)[:12]}" in message
    assert f"(trained on {tiny_data.resolve()})" in message
    assert "differing: items.parquet" in message


def test_permuted_user_vocabulary_is_refused(run: Path, tiny_data: Path, tmp_path: Path):
    """Same items, other user ids: histories would be looked up for the wrong users."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    users = pq.read_table(data / "vocab" / "users.parquet")
    pq.write_table(users.take(list(reversed(range(users.num_rows)))), data / "vocab/users.parquet")
    with pytest.raises(RunIntegrityError, match=r"differing: vocab/users\.parquet\. Pass the data"):
        load_run(run, data_dir=data)


def test_a_copy_of_the_training_data_is_accepted(run: Path, tiny_data: Path, tmp_path: Path):
    data = tmp_path / "moved"
    shutil.copytree(tiny_data, data)
    assert load_run(run, data_dir=data).model_version == load_run(run).model_version


def test_serve_bundle_and_export_refuse_another_dataset(
    run: Path, other_data: Path, tmp_path: Path
):
    with pytest.raises(RunIntegrityError, match="not the data the run"):
        build_bundle(run, other_data, "Flat")
    with pytest.raises(RunIntegrityError, match="not the data the run"):
        export_run(run, tmp_path / "export", data_dir=other_data)
    assert not (run / "index").exists()  # refused before any index was built


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "--no-progress"],
        ["export", "--out", "{tmp}/export"],
        ["retrieve", "--user", "3"],
        ["serve", "--port", "1"],
    ],
    ids=lambda c: c[0],
)
def test_commands_refuse_another_dataset(
    command: list[str], run: Path, other_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import uvicorn

    def no_server(*args: object, **kwargs: object) -> None:
        raise AssertionError("the service started on another dataset")

    monkeypatch.setattr(uvicorn, "run", no_server)
    args = [command[0], str(run), "--data", str(other_data)]
    args += [a.replace("{tmp}", str(tmp_path)) for a in command[1:]]
    # `serve` re-executes itself to set its thread settings unless told it already did
    env = {"COLUMNS": "400", "_MULTIEMBED_SERVE_ENV": "1"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert f"{other_data}: not the data the run {run} was trained on" in result.output
    assert "Traceback" not in result.output
