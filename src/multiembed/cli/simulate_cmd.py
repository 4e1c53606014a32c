"""`multiembed simulate`: a simulated online A/B test in a prepared synthetic world."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ProgressOpt, console


@friendly_errors
def simulate_command(
    world: Annotated[
        Path,
        typer.Option("--world", help="Prepared synthetic data directory (with ground_truth/)."),
    ],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Report directory.")],
    arms: Annotated[
        list[str] | None,
        typer.Option(
            "--arms",
            help="NAME=PART[,PART...]; the first arm is the control. A part is a run "
            "directory, legacy, oracle or random, or an option: nofilter, global_topk.",
        ),
    ] = None,
    more: Annotated[
        list[str] | None, typer.Argument(metavar="[ARMS]...", help="More NAME=PART,... arms.")
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Simulated days.")] = 14,
    shown: Annotated[int, typer.Option("--shown", min=1, help="Items shown per session.")] = 10,
    budget: Annotated[int, typer.Option("--budget", min=1, help="Candidates per request.")] = 200,
    k_ex: Annotated[int, typer.Option("--k-ex", min=0, help="Followed topics per request.")] = 5,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every draw.")] = 0,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=10, help="Bootstrap resamples of users.")
    ] = 1000,
    progress: ProgressOpt = True,
) -> None:
    """Simulate an online A/B test: each arm's retrieval, one shared ranking stage, engagement
    from true interests; saves and adopted topics per arm with lifts and 95% intervals.

    Example: multiembed simulate --world data --out ab --arms control=runs/single
    treatment=runs/dcm,runs/cr
    """
    from multiembed.errors import ConfigError
    from multiembed.retrieve import PlanSettings
    from multiembed.simulate import SimulationConfig, parse_arm, run_simulation

    specs = [s for value in (arms or []) for s in value.split()] + list(more or [])
    parsed = [parse_arm(s) for s in specs]
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise ConfigError([f"--arms: arm names must be distinct, got {names}"])
    config = SimulationConfig(days=days, shown=shown, seed=seed, bootstrap=bootstrap)
    plan = PlanSettings(total=budget, k_ex=k_ex)
    report = run_simulation(world, dict(parsed), out, config=config, plan=plan, progress=progress)
    console.print(report.read_text(encoding="utf-8"))
    console.print(f"report: {report}")
