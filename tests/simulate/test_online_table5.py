"""`online_table5` end to end on a tiny world: three short runs, a three-day simulation."""

from __future__ import annotations

import json
from pathlib import Path

from multiembed.experiments import EXPERIMENTS, get
from multiembed.simulate import SimulationConfig
from tests.experiments.experiment_helpers import tiny_config


def test_online_table5_trains_simulates_and_reports(sim_data: Path, tmp_path: Path):
    assert "online_table5" in EXPERIMENTS
    experiment = get("online_table5")
    path = experiment.run(  # type: ignore[call-arg]  # online experiments take simulation=
        sim_data,
        tmp_path,
        config=tiny_config(),
        seeds=(0,),
        progress=False,
        simulation=SimulationConfig(days=3, bootstrap=100),
    )
    text = path.read_text()
    assert path == tmp_path / "report.md"
    assert text.startswith("# Table 5 (simulated online)")
    assert "| Metric | framework |" in text
    assert "## Offline metrics of the runs" in text
    lifts = json.loads((tmp_path / "lifts.json").read_text())
    assert lifts["control"] == "single"
    assert set(lifts["runs"]) == {"single", "dcm", "cr_source"}
    arms = lifts["arms"]
    assert arms["framework"] == [lifts["runs"]["dcm"], lifts["runs"]["cr_source"]]
    for row in lifts["comparisons"]:
        if row["lift"] is not None and row["low"] is not None:
            assert row["low"] <= row["lift"] <= row["high"]
