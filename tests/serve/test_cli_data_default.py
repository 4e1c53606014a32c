"""`multiembed retrieve` without ``--data`` reads the data directory the run records."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import multiembed.runs
from multiembed.cli.main import app
from multiembed.serve import RetrieveRequest, ServingBundle, retrieve


def test_retrieve_without_data_uses_the_runs_data(
    served_run: tuple[Path, Path], bundle: ServingBundle
) -> None:
    run, data = served_run
    user = str(bundle.vocab.users.raw.to_pylist()[3])
    result = CliRunner().invoke(
        app, ["retrieve", str(run), "--user", user, "--budget", "12"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert f"data: {data.resolve()} (recorded in the run)" in result.output
    served = retrieve(bundle, RetrieveRequest(user_id=int(user), budget=12))
    assert f"{len(served)} candidates" in result.output
    assert "explicit topic_" in result.output  # followed topics came from the data


def test_retrieve_names_a_recorded_data_directory_that_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "moved-away"
    stand_in = SimpleNamespace(manifest={"data": {"dir": str(gone)}})
    monkeypatch.setattr(multiembed.runs, "load_run", lambda *a, **k: stand_in)
    result = CliRunner().invoke(
        app, ["retrieve", str(tmp_path), "--user", "1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert (
        f"--data: not given, and the data directory the run {tmp_path} was trained on, "
        f"{gone}, does not exist; pass --data with the prepared data directory"
    ) in " ".join(result.output.split())


def test_retrieve_help_says_where_data_comes_from() -> None:
    result = CliRunner().invoke(app, ["retrieve", "--help"], env={"COLUMNS": "240"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "default: the directory the run was trained on" in text
