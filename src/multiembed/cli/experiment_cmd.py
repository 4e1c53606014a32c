"""`multiembed experiment NAME`: one of the paper's experiments as a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ConfigOpt, PresetOpt, ProgressOpt, WorkersOpt, console
from multiembed.config import Config, load_config
from multiembed.errors import ConfigError
from multiembed.experiments import EXPERIMENTS


def _seeds(text: str | None, config: Config) -> tuple[int, ...]:
    if text is None:
        return tuple(config.eval.seeds) or (0,)
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError([f"--seeds = {text!r}: expected comma-separated integers"]) from None
    if not seeds or min(seeds) < 0:
        raise ConfigError([f"--seeds = {text!r}: expected at least one integer >= 0"])
    return seeds


@friendly_errors
def experiment_command(
    name: Annotated[str, typer.Argument(metavar="NAME", help=f"One of: {', '.join(EXPERIMENTS)}.")],
    data: Annotated[Path, typer.Option("--data", help="Prepared data directory.")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Report directory.")],
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Training seeds, e.g. 0,1,2 (default eval.seeds).")
    ] = None,
    progress: ProgressOpt = True,
    workers: WorkersOpt = None,
) -> None:
    """Train, evaluate and write one experiment's report (Markdown and PNGs)."""
    from multiembed.experiments import default_workers, get

    experiment = get(name)
    cfg = load_config(config, preset=preset)
    chosen = _seeds(seeds, cfg)
    workers = default_workers() if workers is None else workers
    report = experiment.run(data, out, config=cfg, seeds=chosen, progress=progress, workers=workers)
    console.print(report.read_text(encoding="utf-8"))
    console.print(f"report: {report}")


# the help lists the registry, so a new experiment cannot be left out of it
experiment_command.__doc__ = "\n\n".join(
    [str(experiment_command.__doc__), *(f"{n}: {d}" for n, d in EXPERIMENTS.items())]
)
