"""`multiembed simulate` end to end on arms that need no training, and its input errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from multiembed.cli.main import app

runner = CliRunner()


def test_simulate_writes_the_report_the_lifts_and_the_log(sim_data: Path, tmp_path: Path):
    out = tmp_path / "ab"
    result = runner.invoke(
        app,
        [
            "simulate", "--world", str(sim_data), "--out", str(out), "--days", "3",
            "--budget", "60", "--bootstrap", "100", "--no-progress",
            "--arms", "control=random", "oracle=oracle", "legacy=legacy,nofilter",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "| Metric | oracle | legacy |" in text
    lifts = json.loads((out / "lifts.json").read_text())
    assert lifts["control"] == "control"
    assert lifts["config"]["days"] == 3
    row = next(
        r for r in lifts["comparisons"]
        if (r["arm"], r["metric"], r["segment"]) == ("oracle", "saves", "all")
    )  # fmt: skip
    assert row["low"] <= row["lift"] <= row["high"]
    assert f"{100 * row['lift']:+.2f}%" in text
    log = pq.read_table(out / "engagements.parquet")
    assert set(log.column("arm").to_pylist()) == {"control", "oracle", "legacy"}
    assert set(log.column("source").to_pylist()) <= {"implicit", "explicit", "popular"}


def test_a_bad_arm_is_a_clear_error(sim_data: Path, tmp_path: Path):
    args = ["simulate", "--world", str(sim_data), "--out", str(tmp_path / "x"), "--no-progress"]
    result = runner.invoke(app, [*args, "--arms", "control=random", "t=no/such/run"])
    assert result.exit_code != 0
    assert "arm 't': 'no/such/run' is neither a run directory nor one of" in result.output
    result = runner.invoke(app, [*args, "--arms", "control"])
    assert "expected NAME=PART[,PART...]" in result.output
    result = runner.invoke(app, [*args, "--arms", "control=random"])
    assert "expected a control and at least one treatment, got 1" in result.output
    result = runner.invoke(app, [*args, "--arms", "a=random", "a=oracle"])
    assert "arm names must be distinct" in result.output


def test_a_world_without_ground_truth_is_a_clear_error(tmp_path: Path):
    result = runner.invoke(
        app,
        ["simulate", "--world", str(tmp_path), "--out", str(tmp_path / "x"), "--no-progress",
         "--arms", "c=random", "t=oracle"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "engagements.parquet: missing" in result.output
