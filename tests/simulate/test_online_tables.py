"""online_table3, online_table4, online_table7, online_section44 and online_agreement
end to end on a tiny world.

The agreement trains every run of Tables 3-5 once (module fixture); each table's
test copies those runs into its own folder, where the experiment reuses them
(same config) and only simulates.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from multiembed.experiments import EXPERIMENTS, get
from multiembed.simulate import SimulationConfig
from tests.experiments.experiment_helpers import tiny_config
from tests.simulate.test_spearman import loop_spearman

SIM = SimulationConfig(days=2, bootstrap=100)


@pytest.fixture(scope="module")
def agreement(sim_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("agreement")
    experiment = get("online_agreement")
    path = experiment.run(  # type: ignore[call-arg]  # online experiments take simulation=
        sim_data, out, config=tiny_config(), seeds=(0,), progress=False, simulation=SIM
    )
    assert path == out / "report.md"
    return out


def run_table(name: str, data: Path, agreement: Path, out: Path) -> tuple[str, dict[str, Any]]:
    shutil.copytree(agreement / "runs", out / "runs")
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.pt")}
    path = get(name).run(  # type: ignore[call-arg]
        data, out, config=tiny_config(), seeds=(0,), progress=False, simulation=SIM
    )
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.pt")} == before  # reused
    lifts = json.loads((out / "lifts.json").read_text())
    for row in lifts["comparisons"]:
        if row["lift"] is not None and row["low"] is not None:
            assert row["low"] <= row["lift"] <= row["high"]
    return path.read_text(), lifts


def test_the_online_experiments_are_registered():
    assert {"online_table3", "online_table4", "online_table7", "online_agreement"} <= set(
        EXPERIMENTS
    )


def test_online_table3_adds_each_cr_variant_to_the_legacy_retriever(sim_data, agreement, tmp_path):
    text, lifts = run_table("online_table3", sim_data, agreement, tmp_path)
    assert text.startswith("# Table 3 (simulated online)")
    runs = lifts["runs"]
    assert lifts["control"] == "legacy"
    assert lifts["arms"] == {
        "legacy": ["legacy"],
        "cr_filter": ["legacy", runs["cr_source"]],
        "cr_nofilter": ["legacy", runs["cr_source"], "nofilter"],
        "cr_item": ["legacy", runs["cr_item"]],
    }
    assert "| Metric | cr_filter | cr_nofilter | cr_item |" in text
    assert "`cr_nofilter` = legacy + cr_source-seed0 (no relevance filter)" in text
    assert "`cr_filter` = legacy + cr_source-seed0;" in text
    assert 'condition = "item"' in (Path(runs["cr_item"]) / "config.toml").read_text()
    segments = {r["segment"] for r in lifts["comparisons"]}
    assert {"all", "non_core"} <= segments


def test_online_table4_adds_each_implicit_model_to_legacy_and_cr(sim_data, agreement, tmp_path):
    text, lifts = run_table("online_table4", sim_data, agreement, tmp_path)
    assert text.startswith("# Table 4 (simulated online)")
    models = ["self_attention", "interest_token", "mind", "pfs", "dcm"]
    control = ["legacy", lifts["runs"]["cr_source"]]
    assert lifts["arms"] == {"legacy_cr": control} | {
        m: [*control, lifts["runs"][m]] for m in models
    }
    assert "| Metric | " + " | ".join(models) + " |" in text
    assert "HF Repins (saves per user), core |" in text


def test_online_table7_gives_the_explicit_lift_of_each_non_core_cohort(
    sim_data, agreement, tmp_path
):
    text, lifts = run_table("online_table7", sim_data, agreement, tmp_path)
    section = text.split("## Table 7: the explicit-interest lift by non-core cohort")[1]
    by = {(r["metric"], r["segment"]): r for r in lifts["comparisons"] if r["arm"] == "explicit"}
    for cohort, label in [
        ("casual", "casual"),
        ("marginal", "marginal"),
        ("resurrected", "resurrected"),
        ("new", "new"),
        ("non_core", "non-core"),
    ]:
        line = next(x for x in section.splitlines() if x.startswith(f"| {label} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == f"{by['saves', cohort]['users']:,}"
        for cell, metric in zip(cells[2:], ("saves", "adopted"), strict=True):
            row = by[metric, cohort]
            expected = "n/a" if row["lift"] is None else f"{100 * row['lift']:+.2f}%"
            assert cell.startswith(expected), (cohort, metric, cell)


def test_online_agreement_pairs_offline_metrics_with_lifts_and_correlates_them(agreement):
    text = (agreement / "report.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| table[345] \| [a-z_]+ \|", line)]
    assert len(rows) == 3 + 5 + 1
    x, saves = [], []
    for line in rows:
        table, arm, metric, offline, _coverage, lift, _ = (
            c.strip() for c in line.strip("|").split("|")
        )
        lifts = json.loads((agreement / table / "lifts.json").read_text())
        run, name = metric.split()
        report = json.loads((Path(lifts["runs"][run]) / "eval.json").read_text())
        value = report["segments"]["all"]["metrics"][name]
        assert offline == f"{value:.4f}"
        row = next(
            r
            for r in lifts["comparisons"]
            if (r["arm"], r["metric"], r["segment"]) == (arm, "saves", "all")
        )
        assert lift.startswith(f"{100 * row['lift']:+.2f}%")
        x.append(value)
        saves.append(row["lift"])
    pooled = next(line for line in text.splitlines() if line.startswith("| all tables |"))
    cells = [c.strip() for c in pooled.strip("|").split("|")]
    assert cells[1] == "9"
    assert cells[2] == f"{loop_spearman(x, saves):+.2f} (n=9)"
    table5 = next(line for line in text.splitlines() if line.startswith("| table5 | 1 |"))
    assert "n/a" in table5  # one arm: no correlation
    assert "Caution:" in text
    assert np.isfinite(loop_spearman(x, saves))


def test_online_section44_tests_the_global_topk_merge_and_adaptive_k(sim_data, agreement, tmp_path):
    shutil.copytree(agreement / "runs", tmp_path / "runs")
    reused = [tmp_path / "runs" / f"{label}-seed0" for label in ("dcm", "cr_source")]
    before = {p: p.stat().st_mtime_ns for run in reused for p in run.rglob("*")}
    path = get("online_section44").run(  # type: ignore[call-arg]
        sim_data, tmp_path, config=tiny_config(), seeds=(0,), progress=False, simulation=SIM
    )
    assert {p: p.stat().st_mtime_ns for run in reused for p in run.rglob("*")} == before
    text, lifts = path.read_text(), json.loads((tmp_path / "lifts.json").read_text())
    assert text.startswith("# Section 4.4 (simulated online)")
    assert "`global_topk` = " in text
    assert text.count("(global top-k merge)") == 1  # the arm says how it differs
    runs = lifts["runs"]
    fixed = [runs["dcm_fixed_k"], runs["cr_source"]]
    assert lifts["control"] == "fixed_k_round_robin"
    assert lifts["arms"] == {
        "fixed_k_round_robin": fixed,
        "global_topk": [*fixed, "global_topk"],
        "adaptive_k": [runs["dcm"], runs["cr_source"]],
    }
    for label, share in (("dcm_fixed_k", "0.0"), ("dcm", "0.05")):
        assert f"dcm_min_share = {share}\n" in (Path(runs[label]) / "config.toml").read_text()
    by = {(r["arm"], r["segment"]): r for r in lifts["comparisons"] if r["metric"] == "saves"}
    section = text.split("## Section 4.4: each choice against the paper")[1]
    for arm, paper in (("global_topk", "-0.35% repin users"), ("adaptive_k", "-0.12% HF Repins")):
        line = next(x for x in section.splitlines() if f"| `{arm}` |" in x)
        cells = [c.strip() for c in line.strip("|").split("|")]
        for cell, segment in zip(cells[2:4], ("all", "core"), strict=True):
            row = by[arm, segment]
            assert row["low"] <= row["lift"] <= row["high"]
            assert cell.startswith(f"{100 * row['lift']:+.2f}%"), (arm, segment, cell)
        assert cells[4] == paper
