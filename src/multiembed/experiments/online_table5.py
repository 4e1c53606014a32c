"""Table 5 of the paper, online and simulated: the whole framework against a single embedding.

Trains (or reuses) three runs on the data: the single-embedding two-tower
retriever (the control), DCM (implicit interests) and Conditional Retrieval with
source interest (explicit interests). The treatment arm serves DCM and CR
together through the serving plan (implicit budgets by importance, K_ex
followed topics with the relevance filter, round-robin merge); the control
serves the single embedding alone. `multiembed.simulate.run_simulation` then
runs both arms over every user of the synthetic world with the same sessions
and coins, and writes ``out_dir/report.md`` with the lifts in saves (HF Repins)
and adopted topics (A-Pincepts) and their bootstrap intervals, and each run's
offline HR@100 beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

from multiembed.config import Config
from multiembed.experiments._runs import run_jobs, with_overrides
from multiembed.retrieve import PlanSettings
from multiembed.simulate import SimulationConfig, run_simulation

TITLE = "Table 5 (simulated online): DCM + CR against the single-embedding retriever"


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
    simulation: SimulationConfig | None = None,
) -> Path:
    """Train the three runs of the first seed, simulate, and write ``out_dir/report.md``.

    Args:
        data_dir: a prepared synthetic data directory (with its ground truth).
        out_dir: runs go to ``out_dir/runs``, the simulation's files to ``out_dir``.
        config: the base configuration; the plan's budget, K_ex and floor come from
            its ``[eval]`` table.
        seeds: training seeds; the first trains the runs and seeds the simulation.
        progress: show progress.
        workers: training processes.
        simulation: the simulation's settings (default: 14 days, the seed above).
    """
    if not seeds:
        raise ValueError("online_table5.run: expected at least one seed, got none")
    jobs = [
        ("single", with_overrides(config, {"model": {"kind": "implicit", "name": "single"}})),
        ("dcm", with_overrides(config, {"model": {"kind": "implicit", "name": "dcm"}})),
        (
            "cr_source",
            with_overrides(
                config,
                {
                    "model": {
                        "kind": "explicit",
                        "condition": "source",
                        "condition_examples": "logged",
                    }
                },
            ),
        ),
    ]
    results = run_jobs(jobs, data_dir, out_dir, seeds[:1], progress=progress, workers=workers)
    run_dir = {label: str(runs[0].run_dir) for label, runs in results.items()}
    plan = PlanSettings(
        total=config.eval.budget, k_ex=config.eval.k_ex, floor=config.eval.importance_floor
    )
    sim = simulation if simulation is not None else SimulationConfig(seed=seeds[0])
    path = run_simulation(
        data_dir,
        {"single": [run_dir["single"]], "framework": [run_dir["dcm"], run_dir["cr_source"]]},
        out_dir,
        config=sim,
        plan=plan,
        title=TITLE,
        progress=progress,
    )
    offline = []
    for label, runs in results.items():
        metrics = runs[0].report["segments"]["all"]["metrics"]
        hr = metrics.get("hr@100", metrics.get("filtered_hr@100"))
        offline.append(f"| {label} | {'n/a' if hr is None else f'{hr:.4f}'} |")
    note = [
        "",
        "## Offline HR@100 of the runs",
        "",
        "(filtered HR@100 for CR; see each run's `eval.json`)",
        "",
        "| Run | HR@100 |",
        "|---|---|",
        *offline,
        "",
    ]
    path.write_text(path.read_text(encoding="utf-8") + "\n".join(note), encoding="utf-8")
    lifts = json.loads((out_dir / "lifts.json").read_text())
    lifts["runs"] = run_dir
    (out_dir / "lifts.json").write_text(json.dumps(lifts, indent=2) + "\n")
    return path
