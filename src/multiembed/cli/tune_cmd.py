"""`multiembed tune`: an Optuna search over settings declared in TOML, on the validation metric."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ConfigOpt, PresetOpt, ProgressOpt, console
from multiembed.config import load_config


@friendly_errors
def tune_command(
    data: Annotated[Path, typer.Option("--data", help="Prepared data directory.")],
    space: Annotated[
        Path,
        typer.Option(
            "--space",
            dir_okay=False,
            help="TOML search space: table search (trials, metric, seed, pruning) and "
            "table search.space, a range or choices per setting "
            '(e.g. "train.lr" = { low = 1e-4, high = 1e-2, log = true }).',
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            file_okay=False,
            help="Search directory: trials/NNN, study.db, results.md/.json, best.toml. "
            "Running again on it resumes the search.",
        ),
    ],
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    trials: Annotated[
        int | None,
        typer.Option("--trials", min=1, help="Trials in all, done ones included (search.trials)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.001, help="Start no trial after this many seconds (search.timeout)."
        ),
    ] = None,
    progress: ProgressOpt = True,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, ... (default: CUDA if available).")
    ] = None,
) -> None:
    """Tune settings with Optuna (seeded TPE, median pruning) on the validation users' HR@K."""
    from multiembed.tune import load_space, tune

    base = load_config(config, preset=preset)
    checked = load_space(space, base)
    result = tune(
        data,
        checked,
        out,
        config=base,
        trials=trials,
        timeout=timeout,
        progress=progress,
        device=device,
    )
    console.print(result.table)
    console.print(f"ran {result.ran} trial(s) · {len(result.records)} in the study")
    if result.best is None or result.best_toml is None:
        console.print("no trial completed: see the notes in the table")
    else:
        console.print(
            f"best: trial {result.best.number}, {checked.metric} = {result.best.metric:.4f} · "
            f"its config: {result.best_toml} (multiembed train --config {result.best_toml})"
        )
    console.print(f"results: {result.results_md} · {result.results_json}")
