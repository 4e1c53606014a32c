"""`bench/public_splits.py`: settings x splits x seeds through a runner, resumable, one table."""

from __future__ import annotations

import doctest
import importlib.util
import json
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "public_splits.py"

# A stand-in for the benchmark's run.sh: Recall@50 = seed / 10 + lr, cosine 0.5; it logs
# each call so a test can count them, and fails on the split named "broken".
FAKE_RUNNER = """#!/usr/bin/env python3
import json, pathlib, sys, tomllib
split, config, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
with open(pathlib.Path(__file__).with_name("calls.log"), "a") as log:
    log.write(f"{split} {config.name}\\n")
if split == "broken":
    print(f"{split}: train failed: no events")
    sys.exit(1)
c = tomllib.loads(config.read_text())
work.mkdir(parents=True, exist_ok=True)
recall = c["train"]["seed"] / 10 + c["train"].get("lr", 0.0)
score = {"recall@50": recall, "interest_cosine": 0.5, "n_users": 30}
(work / "score.json").write_text(json.dumps(score))
print(f"{split}: Recall@50 {recall:.4f}")
"""


@pytest.fixture(scope="module")
def sweep() -> ModuleType:
    spec = importlib.util.spec_from_file_location("public_splits", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def runner(tmp_path: Path) -> Path:
    (tmp_path / "bin").mkdir()
    return _executable(tmp_path / "bin" / "run.sh", FAKE_RUNNER)


def test_doctests(sweep: ModuleType) -> None:
    assert doctest.testmod(sweep).failed == 0


def test_sweep_tabulates_mean_and_std_over_seeds_and_resumes(
    sweep: ModuleType, runner: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["--runner", str(runner), "--out", str(out), "--splits", "a,b", "--seeds", "0,1"]
    argv += ["--setting", "defaults", "--setting", "lr=train.lr=0.01", "--workers", "2"]
    assert sweep.main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert {(r["setting"], r["split"], r["seed"]) for r in rows} == {
        (s, d, k) for s in ("defaults", "lr") for d in ("a", "b") for k in (0, 1)
    }
    lines = (out / "table.md").read_text().splitlines()
    # seeds 0 and 1 give 0.0 and 0.1 (+ lr): mean 0.05, std 0.071
    assert lines[2] == "| defaults | 0.050 ± 0.071 (2) / cos 0.50 | 0.050 ± 0.071 (2) / cos 0.50 |"
    assert lines[3].startswith("| lr | 0.060 ± 0.071 (2)")
    assert "lr = 0.01" in (out / "configs" / "lr-1.toml").read_text()
    calls = (runner.parent / "calls.log").read_text().splitlines()
    assert len(calls) == 8
    # a second call with one more seed runs only the new seed's four jobs
    assert sweep.main([*argv[:-2], "--seeds", "0,1,2", "--workers", "1"]) == 0
    assert len((runner.parent / "calls.log").read_text().splitlines()) == 12


def test_a_failed_run_is_recorded_and_retried_next_time(
    sweep: ModuleType, runner: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["--runner", str(runner), "--out", str(out), "--splits", "broken", "--seeds", "0"]
    assert sweep.main(argv) == 0
    (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert row["error"] == "exit 1"
    assert "train failed" in row["line"]
    assert "| defaults | - |" in (out / "table.md").read_text()
    sweep.main(argv)
    assert len((runner.parent / "calls.log").read_text().splitlines()) == 2


def test_a_setting_without_a_section_is_refused(sweep: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"expected section\.key=value, got 'lr=0\.1'"):
        sweep.parse_setting("x=lr=0.1")


def test_a_baseline_compares_the_settings_seed_by_seed(
    sweep: ModuleType, runner: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ["--runner", str(runner), "--out", str(out), "--splits", "a", "--seeds", "0,1"]
    argv += ["--setting", "defaults", "--setting", "lr=train.lr=0.01"]
    argv += ["--setting", "wd=train.weight_decay=0.1", "--baseline", "defaults"]
    assert sweep.main(argv) == 0
    text = (out / "table.md").read_text()
    # the fake runner's Recall@50 moves with lr only: +0.01 on both seeds, and level
    assert "| lr | +0.010 (2 / 0 / 0) |" in text
    assert "| wd | +0.000 (0 / 2 / 0) |" in text
    assert "| defaults | +" not in text
    with pytest.raises(SystemExit):
        sweep.main([*argv[:-1], "nope"])


# The benchmark's own scorer for ``--valid``: Recall@50 0.4 on 10 validation users, or
# an error for the split named "unscored"; it checks it was asked for the valid users.
FAKE_SCORE = """import json, sys
split, export, which = sys.argv[2], sys.argv[3], sys.argv[5]
assert sys.argv[1] == "score" and sys.argv[4] == "--which", sys.argv
if split.endswith("unscored"):
    sys.exit("no export")
print("scoring", which)
print(json.dumps({"recall@50": 0.4, "n_users": 10, "which": which}))
"""

# The CLI ``--valid`` exports the validation users with: keeps the histories it was given.
FAKE_CLI = """#!/usr/bin/env python3
import pathlib, shutil, sys
args = sys.argv[1:]
assert args[0] == "export" and args[2] == "--out" and args[4] == "--users", args
shutil.copy(args[5], pathlib.Path(__file__).with_name("exported.csv"))
"""


def test_valid_users_are_exported_from_the_same_run_scored_and_pooled(
    sweep: ModuleType, runner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = runner.parent
    (bench / "score.py").write_text(FAKE_SCORE)
    for split in ("a", "unscored"):
        (bench / "splits" / split).mkdir(parents=True)
        (bench / "splits" / split / "valid_history.csv").write_text(
            "user_id,item_id,item_idx,timestamp,topic,pos\n7,70,0,3,,0\n7,71,1,892001374,,1\n"
        )
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setenv("BENCH_VENV", str(venv))
    monkeypatch.setenv("MULTIEMBED", str(_executable(bench / "cli", FAKE_CLI)))
    out = tmp_path / "out"
    argv = ["--runner", str(runner), "--out", str(out), "--splits", "a,unscored"]
    argv += ["--seeds", "1", "--workers", "1"]
    assert sweep.main(argv) == 0  # without --valid: test users only
    assert sweep.main([*argv, "--valid", "--score", "pooled"]) == 0  # runs again, with them
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert rows[2]["valid_scores"] == {"recall@50": 0.4, "n_users": 10, "which": "valid"}
    assert rows[3]["valid_error"].startswith("score: exit 1: no export")
    assert rows[3]["scores"]["recall@50"] == 0.1  # the test score stands
    # positions become minutes after score.py's epoch, as the runner lays out test users
    assert (bench / "exported.csv").read_text().splitlines() == [
        "user_id,item_id,timestamp",
        "7,70,1500000180",
        "7,71,892001374",
    ]
    text = (out / "table.md").read_text()
    assert text.startswith("Recall@50 on the pooled users")
    # (0.1 x 30 test users + 0.4 x 10 valid users) / 40; the unscored split has none
    assert "| defaults | 0.175 (1) / cos 0.50 | - |" in text
    calls = len((bench / "calls.log").read_text().splitlines())
    assert sweep.main([*argv, "--valid"]) == 0  # "a" is complete; "unscored" runs again
    assert len((bench / "calls.log").read_text().splitlines()) == calls + 1
