"""`multiembed train`: a prepared data directory -> a run directory (weights, config, vocab)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ConfigOpt, PresetOpt, ProgressOpt, plain_console
from multiembed.config import load_config


@friendly_errors
def train_command(
    data: Annotated[Path, typer.Option("--data", help="Prepared data directory.")],
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Run directory to write (or resume).")
    ],
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", help="Stop after this many steps in total.")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Override train.epochs.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue from OUT/checkpoint if present.")
    ] = True,
    progress: ProgressOpt = True,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda, ... (default: CUDA if available).")
    ] = None,
) -> None:
    """Train a retrieval model; under torchrun, data parallel over the ranks."""
    from multiembed.runs import model_label
    from multiembed.train import train

    cfg = load_config(config, preset=preset)
    overrides: dict[str, Any] = {
        k: v for k, v in (("max_steps", max_steps), ("epochs", epochs)) if v is not None
    }
    if overrides:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))
    result = train(cfg, data, out, progress=progress, resume=resume, device=device)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    loss = "-" if result.final_loss is None else f"{result.final_loss:.4f}"
    resumed = "" if result.resumed_from is None else f" (resumed from step {result.resumed_from})"
    split = result.split
    plain_console.print(
        f"split {cfg.split.protocol!r}: engagements {split['engagements']:,} · training "
        f"targets {split['training_targets']:,} ({100 * split['training_share']:.1f} % of "
        f"{split['positive']:,} positive) · held out: validation "
        f"{split['validation_targets']:,}, test {split['test_targets']:,}"
    )
    if result.stopped_early:
        state = "early stopping (train.patience)"
    else:
        state = "complete" if result.complete else "stopped at train.max_steps"
    plain_console.print(f"trained {model_label(cfg)}: {state}{resumed}")
    if result.best_step is not None and result.best_score is not None:
        plain_console.print(
            f"kept the weights of step {result.best_step:,}: validation HR@100 "
            f"{result.best_score:.4f}"
        )
    plain_console.print(
        f"steps {result.steps:,} · epochs {result.epochs} · examples {result.examples:,} "
        f"· final loss {loss} · {result.examples_per_s:,.0f} examples/s · {result.wall_s:.1f} s"
    )
    if result.interests is not None:
        chosen = result.interests
        scores = ", ".join(
            f"{k}: {'-' if v is None else f'{v:.4f}'}" for k, v in chosen.scores.items()
        )
        when = "" if chosen.step is None else f" at step {chosen.step:,}, trained as one since"
        plain_console.print(
            f"serves {chosen.served_k} of {chosen.trained_k} interests (train.select_interests): "
            f"validation Recall@50 by K {{{scores}}} over {chosen.users:,} users{when}"
        )
    plain_console.print(f"model version {result.model_version} · run directory {result.run_dir}")
