"""`multiembed retrieve RUN --user ID` prints candidates with provenance."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from multiembed.cli.main import app
from multiembed.serve import RetrieveRequest, ServingBundle, retrieve


def test_retrieve_prints_provenance(served_run: tuple[Path, Path], bundle: ServingBundle) -> None:
    run, data = served_run
    user = str(bundle.vocab.users.raw.to_pylist()[3])
    result = CliRunner().invoke(
        app,
        ["retrieve", str(run), "--data", str(data), "--user", user, "--budget", "12"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    # the budget exactly: lists that found the same items are searched deeper
    served = retrieve(bundle, RetrieveRequest(user_id=int(user), budget=12))
    assert len(served) == 12
    assert "12 candidates" in result.output
    assert "implicit slot" in result.output
    assert "explicit topic_" in result.output
    assert bundle.model_version in result.output


def test_retrieve_unknown_user_is_a_clear_error(served_run: tuple[Path, Path]) -> None:
    run, data = served_run
    result = CliRunner().invoke(
        app, ["retrieve", str(run), "--data", str(data), "--user", "999999"]
    )
    assert result.exit_code == 2
    assert "unknown user" in result.output
