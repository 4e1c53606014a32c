"""The demo end to end on a tiny world: the comparison table is printed, the report written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TINY = """
[synthetic]
n_users = 200
n_items = 1500
n_topics = 6
subtopics_per_topic = 2

[examples]
seq_len = 12

[model]
k = 3
dim = 16
id_dim = 8
hidden_dim = 16

[train]
batch_size = 64
max_steps = 15
log_every = 5

[eval]
corpus_size = 800
ks = [50, 100, 1000]
budget = 50
max_users = 200
seeds = [0, 1]
"""


def test_demo_prints_the_table_and_writes_the_report(tmp_path: Path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "multiembed", "demo", "--out", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    stdout = result.stdout
    assert "mean ± std over 2 seed(s)" in stdout
    for needle in ("HR@100", "coverage", "served HR", "single", "mind", "dcm", "±"):
        assert needle in stdout
    assert "explicit interests (CR)" in stdout
    assert "filtered HR@100" in stdout
    report = (out / "report.md").read_text()
    assert "| dcm |" in report
    assert "| mind |" in report
    assert "| single |" in report
    assert "## Explicit interests: Conditional Retrieval" in report
    assert "| cr |" in report
    for png in ("training_curves.png", "hit_rates.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    for model in ("single", "mind", "dcm", "cr"):
        for seed in (0, 1):
            assert (out / "runs" / f"{model}-seed{seed}" / "eval.json").is_file()


def test_demo_bad_config_is_a_clear_error(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nmax_steps = -1\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "multiembed",
            "demo",
            "--out",
            str(tmp_path),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert "train.max_steps = -1" in result.stderr
    assert "Traceback" not in result.stderr
