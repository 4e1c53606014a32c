"""The demo end to end on a tiny world: the comparison table is printed, the report written."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


MODELS = ("single", "mind", "dcm")
SEEDS = (0, 1)
PRINTED = {  # metric -> digits in the terminal table
    "hr@50": 3,
    "hr@100": 3,
    "hr@1000": 3,
    "coverage_round_robin": 3,
    "served_hr_round_robin": 3,
    "diversity_round_robin": 1,
}
PRINTED_CR = ("explicit_hr@100", "filtered_hr@100", "filtered_hr@1000")
PRINTED_CR += ("coverage_round_robin", "served_hr_round_robin")
REPORTED = ("hr@100", "hr@1000", "coverage_round_robin", "served_hr_round_robin")


def mean_std(values: list[float], digits: int) -> str:
    """``mean ± std`` over the seeds (sample std), as the demo prints it."""
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def cells(line: str, sep: str) -> list[str]:
    return [c.strip() for c in line.strip().strip(sep).split(sep)]


def tables(markdown: str) -> list[dict[str, list[str]]]:
    """Each Markdown table of the text, in order: first cell -> the other cells of its rows."""
    out: list[dict[str, list[str]]] = []
    for block in markdown.split("\n\n"):
        lines = [x for x in block.splitlines() if x.startswith("| ")]
        if lines:
            out.append({c[0]: c[1:] for c in (cells(x, "|") for x in lines[1:])})
    return out


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
    assert "synthetic world: mean ± std over 2 seed(s)" in stdout
    assert "explicit interests (CR): mean ± std over 2 seed(s)" in stdout
    for png in ("training_curves.png", "hit_rates.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    def runs(model: str, name: str) -> list[dict[str, Any]]:
        return [
            json.loads((out / "runs" / f"{model}-seed{seed}" / name).read_text()) for seed in SEEDS
        ]

    evals = {m: runs(m, "eval.json") for m in (*MODELS, "cr")}

    def stat(model: str, metric: str, digits: int) -> str:
        return mean_std([r["segments"]["all"]["metrics"][metric] for r in evals[model]], digits)

    # the terminal tables: a row per model, each cell the mean ± std of its runs
    printed = {c[0]: c[1:] for c in (cells(x, "│") for x in stdout.splitlines() if "│" in x)}
    assert set(printed) == {*MODELS, "cr"}
    for model in MODELS:
        assert printed[model] == [stat(model, m, d) for m, d in PRINTED.items()], model
    assert printed["cr"] == [stat("cr", m, 3) for m in PRINTED_CR]

    # the report: the same numbers with 4 digits, the corpus line, the training table
    report = (out / "report.md").read_text()
    main, training, explicit = tables(report)
    for model in MODELS:
        assert main[model] == [stat(model, m, 4) for m in REPORTED], model
    assert explicit["cr"] == [stat("cr", m, 4) for m in PRINTED_CR]
    first = evals["single"][0]
    assert (
        f"Corpus: the {first['corpus']['size']:,} most-engaged items "
        f"({first['corpus']['positives_in_corpus']:.1%} of evaluation positives inside); "
        f"{first['records']['evaluated']:,} evaluation records." in report
    )
    for model in MODELS:
        manifests = [m["training"] for m in runs(model, "manifest.json")]
        assert [t["steps"] for t in manifests] == [15, 15]
        losses = [t["final_loss"] for t in manifests]
        assert training[model][1:] == ["15", mean_std(losses, 3)], model


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
