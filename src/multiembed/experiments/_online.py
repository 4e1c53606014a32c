"""What the simulated online experiments share: an `OnlineTable` and `run_table`.

An online experiment names the runs it trains (label -> config overrides), the
arms it simulates from their directories (the first arm is the control), and,
for each treatment arm, the run and offline metric it adds to the control (what
the offline-online agreement compares). `run_table` trains (or reuses) the runs
of the first seed with `run_jobs`, simulates the arms with
`multiembed.simulate.run_simulation` and appends the runs' offline metrics to
the report; ``lifts.json`` gains the run directories.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from multiembed.config import Config
from multiembed.experiments._runs import RunResult, run_jobs, with_overrides
from multiembed.retrieve import PlanSettings
from multiembed.simulate import (
    LIFTS_FILE,
    Comparison,
    SimulationConfig,
    load_comparisons,
    markdown_table,
    run_simulation,
)

Overrides = Mapping[str, Mapping[str, Any]]

#: Conditional Retrieval with source interest (the paper's, Section 3.3.2).
CR_SOURCE: Final[Overrides] = {
    "model": {"kind": "explicit", "condition": "source", "condition_examples": "logged"}
}
#: Conditional Retrieval with item interest (Lin et al.'s association, as the cr_item preset).
CR_ITEM: Final[Overrides] = {
    "model": {"kind": "explicit", "condition": "item", "condition_examples": "all"}
}
#: Offline metrics shown for every run (None where a run's kind has none).
OFFLINE_METRICS: Final = {
    "hr@100": "HR@100",
    "filtered_hr@100": "filtered HR@100",
    "explicit_hr@100": "unfiltered HR@100",
    "coverage_round_robin": "coverage",
}


def implicit(name: str) -> Overrides:
    """Overrides of an implicit-interest run of model `name` (single, dcm, mind, ...)."""
    return {"model": {"kind": "implicit", "name": name}}


@dataclass(frozen=True)
class OnlineTable:
    """One simulated online experiment.

    Attributes:
        title: the report's title.
        runs: run label -> config overrides of the base config.
        arms: run directories by label -> ``{arm: parts}`` (`multiembed.simulate.parse_arm`
            parts), the control first.
        offline: treatment arm -> (run label, offline metric) that the arm adds to its
            control, for the offline-online agreement.
        section: the comparisons -> Markdown appended to the report (a table of the
            paper's own shape), or None.
    """

    title: str
    runs: Mapping[str, Overrides]
    arms: Callable[[Mapping[str, str]], dict[str, list[str]]]
    offline: Mapping[str, tuple[str, str]]
    section: Callable[[list[Comparison]], str] | None = None


def train_runs(
    runs: Mapping[str, Overrides],
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool,
    workers: int,
) -> dict[str, RunResult]:
    """Train (or reuse) every run of the first seed into ``out_dir/runs/<label>-seed<s>``."""
    if not seeds:
        raise ValueError("online experiments: expected at least one seed, got none")
    jobs = [(label, with_overrides(config, overrides)) for label, overrides in runs.items()]
    results = run_jobs(jobs, data_dir, out_dir, seeds[:1], progress=progress, workers=workers)
    return {label: runs_of_label[0] for label, runs_of_label in results.items()}


def offline_metrics(result: RunResult) -> dict[str, float | None]:
    """`OFFLINE_METRICS` of a run over all users, None where the run has no such metric."""
    metrics = result.report["segments"]["all"]["metrics"]
    return {name: metrics.get(name) for name in OFFLINE_METRICS}


def simulate_table(
    table: OnlineTable,
    results: Mapping[str, RunResult],
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    simulation: SimulationConfig,
    progress: bool,
) -> Path:
    """Simulate `table`'s arms over trained `results`; write ``out_dir/report.md``."""
    run_dir = {label: str(results[label].run_dir) for label in table.runs}
    plan = PlanSettings(
        total=config.eval.budget, k_ex=config.eval.k_ex, floor=config.eval.importance_floor
    )
    arms = table.arms(run_dir)
    path = run_simulation(
        data_dir, arms, out_dir, config=simulation, plan=plan, title=table.title, progress=progress
    )
    offline = {label: offline_metrics(results[label]) for label in table.runs}
    rows = [[label, *map(_fmt, metrics.values())] for label, metrics in offline.items()]
    note = [
        "",
        "## Offline metrics of the runs",
        "",
        "Over all evaluation records of each run's `eval.json`: HR@100 for implicit runs, "
        "filtered and unfiltered HR@100 for CR, interest coverage of the round-robin list.",
        "",
        markdown_table(["Run", *OFFLINE_METRICS.values()], rows),
        "",
    ]
    lifts_path = out_dir / LIFTS_FILE
    if table.section is not None:
        note.append(table.section(load_comparisons(lifts_path)))
    path.write_text(path.read_text(encoding="utf-8") + "\n".join(note), encoding="utf-8")
    lifts = {**json.loads(lifts_path.read_text()), "runs": run_dir, "offline": offline}
    lifts_path.write_text(json.dumps(lifts, indent=2) + "\n")
    return path


def run_table(
    table: OnlineTable,
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
    simulation: SimulationConfig | None = None,
) -> Path:
    """Train `table`'s runs of the first seed, simulate its arms, write ``out_dir/report.md``.

    An online experiment's ``run`` is this function with its table bound
    (`multiembed.experiments.Experiment`, and ``simulation=``).

    Args:
        table: the experiment.
        data_dir: a prepared synthetic data directory (with its ground truth).
        out_dir: runs go to ``out_dir/runs``, the simulation's files to ``out_dir``.
        config: the base configuration; the plan's budget, K_ex and floor come
            from its ``[eval]`` table.
        seeds: training seeds; the first trains the runs and seeds the simulation.
        progress: show progress.
        workers: training processes.
        simulation: the simulation's settings (default: 14 days, the seed above).
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    results = train_runs(
        table.runs,
        data_dir,
        out_dir,
        config=config,
        seeds=seeds,
        progress=progress,
        workers=workers,
    )
    sim = simulation if simulation is not None else SimulationConfig(seed=seeds[0])
    return simulate_table(
        table, results, data_dir, out_dir, config=config, simulation=sim, progress=progress
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
