"""Training and evaluating one (model, seed) of an experiment, reusing finished runs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from multiembed.config import Config, parse, to_dict
from multiembed.errors import DataError
from multiembed.eval._embed import UserItemModel
from multiembed.eval.evaluate import EVAL_FILE, evaluate
from multiembed.train import train

RESULT_FILE = "train_result.json"


class RunResult(NamedTuple):
    """One trained and evaluated run: its directory, eval report and training numbers."""

    run_dir: Path
    report: dict[str, Any]
    training: dict[str, Any]


def with_overrides(config: Config, overrides: Mapping[str, Mapping[str, Any]]) -> Config:
    """`config` with some settings replaced, e.g. ``{"model": {"name": "mind"}}``.

    >>> with_overrides(Config(), {"model": {"k": 2}}).model.k
    2
    """
    data = to_dict(config)
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return parse(Config, data)


def seeded(config: Config, seed: int) -> Config:
    """The config of training seed `seed`: both the loop's and the model's generators."""
    return with_overrides(config, {"train": {"seed": seed}, "model": {"seed": seed}})


def train_and_evaluate(
    config: Config, data_dir: Path, run_dir: Path, *, progress: bool
) -> RunResult:
    """Train into `run_dir` and evaluate; a run that already has its results is reused.

    A run is reused only when its ``config.toml`` is the same config (so a changed
    setting retrains).
    """
    result_path = run_dir / RESULT_FILE
    if result_path.is_file() and (run_dir / EVAL_FILE).is_file():
        saved = json.loads(result_path.read_text())
        if saved.get("config") == to_dict(config):
            report = json.loads((run_dir / EVAL_FILE).read_text())
            return RunResult(run_dir, report, saved["training"])
    result = train(config, data_dir, run_dir, progress=progress, resume=False)
    report = evaluate(run_dir, data_dir, progress=progress)
    training = {
        "steps": result.steps,
        "examples": result.examples,
        "examples_per_s": result.examples_per_s,
        "wall_s": result.wall_s,
        "final_loss": None
        if result.final_loss is None or not math.isfinite(result.final_loss)
        else result.final_loss,
    }
    result_path.write_text(json.dumps({"config": to_dict(config), "training": training}) + "\n")
    return RunResult(run_dir, report, training)


def run_seeds(
    config: Config,
    data_dir: Path,
    out_dir: Path,
    label: str,
    seeds: tuple[int, ...],
    *,
    progress: bool,
    announce: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """`train_and_evaluate` for every seed into ``out_dir/runs/<label>-seed<s>``."""
    results = []
    for seed in seeds:
        if announce is not None:
            announce(f"{label}, seed {seed}")
        run_dir = out_dir / "runs" / f"{label}-seed{seed}"
        results.append(
            train_and_evaluate(seeded(config, seed), data_dir, run_dir, progress=progress)
        )
    return results


def implicit_model(model: object, where: str) -> UserItemModel:
    """`model` as an implicit multi-embedding model, or a clear error for another kind."""
    if not isinstance(model, UserItemModel):
        raise DataError(
            f"{where}: expected an implicit-interest model (embed_users), "
            f"got {type(model).__name__}"
        )
    return model


def announcer(progress: bool) -> Callable[[str], None] | None:
    """Prints ``== <what>`` lines on the terminal when `progress` is on."""
    if not progress:
        return None
    from rich.console import Console

    console = Console(highlight=False, markup=False)
    return lambda what: console.print(f"== {what}")
