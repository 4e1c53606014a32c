"""Training and evaluating the (config, seed) runs of an experiment, reusing finished runs.

`run_jobs` trains every (config, seed) pair, one after the other or spread over
worker processes (``workers`` > 1, one torch thread each: the runs are
independent, so N cores train N runs at once). Workers are spawned, not forked,
so no OpenMP or torch thread state is inherited, and a user-input error inside a
worker comes back as a `DataError` naming the run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from multiembed._progress import runs_bar
from multiembed.config import Config, parse, to_dict
from multiembed.errors import DataError, MultiembedError
from multiembed.eval.evaluate import EVAL_FILE, evaluate
from multiembed.runs import UserItemModel
from multiembed.train import train

RESULT_FILE = "train_result.json"
T = TypeVar("T")


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
    setting retrains). The experiments compare models at the number of interests they
    were trained with, as the paper does: ``train.select_interests`` is off.
    """
    config = with_overrides(config, {"train": {"select_interests": False}})
    result_path = run_dir / RESULT_FILE
    if result_path.is_file() and (run_dir / EVAL_FILE).is_file():
        saved = json.loads(result_path.read_text())
        if saved.get("config") == to_dict(config):
            report = json.loads((run_dir / EVAL_FILE).read_text())
            return RunResult(run_dir, report, saved["training"])
    result = train(config, data_dir, run_dir, progress=progress, resume=False)
    report = evaluate(run_dir, data_dir, progress=progress)
    training = {k: getattr(result, k) for k in ("steps", "examples", "examples_per_s", "wall_s")}
    loss = result.final_loss
    training["final_loss"] = None if loss is None or not math.isfinite(loss) else loss
    result_path.write_text(json.dumps({"config": to_dict(config), "training": training}) + "\n")
    return RunResult(run_dir, report, training)


_quiet = partial(train_and_evaluate, progress=False)
"""`train_and_evaluate` as a worker runs it: its terminal shows one line per finished run."""


def default_workers() -> int:
    """Worker processes for experiments: one per core, at most 2 (about 1 GB of memory each)."""
    return max(1, min(2, os.cpu_count() or 1))


def run_jobs(
    jobs: Sequence[tuple[str, Config]],
    data_dir: Path,
    out_dir: Path,
    seeds: tuple[int, ...],
    *,
    progress: bool,
    announce: Callable[[str], None] | None = None,
    workers: int = 1,
) -> dict[str, list[RunResult]]:
    """Train and evaluate every ``(label, config)`` for every seed; results by label, seed order.

    Run ``(label, s)`` goes to ``out_dir/runs/<label>-seed<s>``. With ``workers`` > 1
    the runs are spread over that many spawned processes (each with one torch
    thread); the terminal then shows one line per finished run instead of each
    run's own progress bars.

    Raises:
        DataError: a run failed on user input (the message names the run).
    """
    tasks = [
        (label, seed, seeded(config, seed), Path(out_dir) / "runs" / f"{label}-seed{seed}")
        for label, config in jobs
        for seed in seeds
    ]
    if workers > 1 and len(tasks) > 1:
        done = _in_workers(
            tasks, Path(data_dir), min(workers, len(tasks)), announce, progress=progress
        )
    else:
        done = {}
        for label, seed, config, run_dir in tasks:
            if announce is not None:
                announce(f"{label}, seed {seed}")
            done[label, seed] = train_and_evaluate(config, data_dir, run_dir, progress=progress)
    return {label: [done[label, seed] for seed in seeds] for label, _ in jobs}


_Task = tuple[str, int, Config, Path]
"""A run of `run_jobs`: label, seed, seeded config, run directory."""


def _in_workers(
    tasks: list[_Task],
    data_dir: Path,
    workers: int,
    announce: Callable[[str], None] | None,
    *,
    progress: bool,
) -> dict[tuple[str, int], RunResult]:
    """The runs on `workers` spawned processes, announced as they finish, with a bar of
    finished runs and the elapsed time when `progress` is on."""

    done: dict[tuple[str, int], RunResult] = {}
    started = time.perf_counter()
    bar = runs_bar(enabled=progress)
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_one_thread)
    say = None if announce is None else bar.console.print  # lines above the live bar
    with bar, pool:
        if say is not None:
            say(f"== {len(tasks)} runs on {workers} worker processes")
        finished = bar.add_task("training and evaluating runs", total=len(tasks))
        futures: dict[Future[RunResult | str], tuple[str, int]] = {
            pool.submit(as_message, _quiet, config, data_dir, run_dir): (label, seed)
            for label, seed, config, run_dir in tasks
        }
        for n, future in enumerate(as_completed(futures), start=1):
            label, seed = futures[future]
            outcome = future.result()
            if isinstance(outcome, str):
                for other in futures:
                    other.cancel()
                raise DataError(f"{label}, seed {seed}: {outcome}")
            done[label, seed] = outcome
            bar.advance(finished)
            if say is not None:
                hr = outcome.report["segments"]["all"]["metrics"].get("hr@100")
                shown = "" if hr is None else f", HR@100 {hr:.4f}"
                took = time.perf_counter() - started
                say(f"== {label}, seed {seed} done{shown} ({n}/{len(tasks)}, {took:.0f} s)")
    return done


def _one_thread() -> None:
    """Worker start-up: one intra-op thread, so N workers share N cores without spinning."""
    import torch

    torch.set_num_threads(1)


def as_message(fn: Callable[..., T], *args: Any) -> T | str:
    """``fn(*args)`` in a worker process; a user-input error comes back as its message."""
    try:
        return fn(*args)
    except MultiembedError as err:
        return f"{type(err).__name__}: {err}"


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
