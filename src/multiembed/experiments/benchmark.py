"""Benchmark: models compared under the ComiRec protocol on any prepared data directory.

`benchmark(data_dir, out_dir, ...)` splits the users 8:1:1 (`comirec_split`,
``split.seed`` and shares from the config), and for every model and seed:

- ``mostpop`` and ``ease`` (`multiembed.experiments._baselines`) are fitted on
  the training users' positive engagements (deterministic: one run each);
- the two-tower models (``single``, ``mind``, ``self_attention``, ``dcm``, ...)
  are trained with `multiembed.train.train` into ``out_dir/runs/<model>-seed<s>``
  with the config's settings, ``split.protocol = "comirec"`` (so the test users
  are never trained on) and ``model.seed = train.seed = s``; the test users'
  histories and the whole item set are then embedded with the trained run.

Each test user's request is its history (`multiembed.eval.load_eval_data`: the
first record of the user); every item is scored by the max over the user's used
embeddings, the items of the user's whole history (any action) are excluded, and
the top 50 of all items are kept. Per user, then averaged over users (see
`multiembed.eval.metrics`): Recall@20 and Recall@50 (hits / distinct targets),
HitRate@50, NDCG@50 (ideal DCG over ``min(|targets|, 50)`` positions), topic
coverage@50 (share of the targets' topics among the top 50's topics), the
interest cosine (mean pairwise cosine of the user's used embeddings, over users
with at least two), and the training seconds. Over seeds: mean and sample std.

Writes ``out_dir/benchmark.json`` and ``out_dir/benchmark.md``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple, get_args, get_type_hints

import numpy as np

from multiembed._progress import runs_bar
from multiembed.config import Config, ModelConfig
from multiembed.errors import ConfigError, DataError
from multiembed.eval.evaluate import interest_spread
from multiembed.eval.metrics import interest_coverage, mean_std, ranking_metrics
from multiembed.experiments import _baselines
from multiembed.experiments._benchmark_report import write_outputs
from multiembed.experiments._held_out import HeldOutUsers, load_test_users
from multiembed.experiments._runs import _one_thread, as_message, implicit_model
from multiembed.runs import embed_items, embed_users, inference, load_run
from multiembed.train import train

BASELINES = ("mostpop", "ease")
TRAINED: tuple[str, ...] = get_args(get_type_hints(ModelConfig)["name"])
DEFAULT_MODELS = ("mostpop", "ease", "single", "mind", "self_attention", "dcm")
DEFAULT_SEEDS = (0, 1, 2)
TOP_N = 50


class BenchmarkResult(NamedTuple):
    """What `benchmark` wrote: the report as a dict, its JSON and Markdown files, the table."""

    report: dict[str, Any]
    json_path: Path
    markdown_path: Path
    table: str


def parse_models(text: str) -> tuple[str, ...]:
    """Comma-separated model names, checked against the known ones.

    >>> parse_models("mostpop, dcm")
    ('mostpop', 'dcm')
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    known = (*BASELINES, *TRAINED)
    problems = [
        f"--models: unknown model {n!r} (known: {', '.join(known)})"
        for n in names
        if n not in known
    ]
    if not names:
        problems.append(f"--models = {text!r}: expected at least one model name")
    if len(set(names)) != len(names):
        problems.append(f"--models = {text!r}: a model is named twice")
    if problems:
        raise ConfigError(problems)
    return names


def parse_seeds(text: str) -> tuple[int, ...]:
    """Comma-separated distinct seeds >= 0.

    >>> parse_seeds("0,1,2")
    (0, 1, 2)
    """
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError([f"--seeds = {text!r}: expected comma-separated integers"]) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError([f"--seeds = {text!r}: expected distinct integers >= 0"])
    return seeds


def run_config(config: Config, model: str, seed: int) -> Config:
    """The training config of one run: the ComiRec split, `model`, and `seed` for both generators.

    >>> cfg = run_config(Config(), "mind", 2)
    >>> cfg.split.protocol, cfg.model.name, cfg.model.seed, cfg.train.seed
    ('comirec', 'mind', 2, 2)
    """
    return dataclasses.replace(
        config,
        split=dataclasses.replace(config.split, protocol="comirec"),
        model=dataclasses.replace(config.model, name=model, seed=seed),  # type: ignore[arg-type]
        train=dataclasses.replace(config.train, seed=seed),
    )


def list_metrics(
    top: np.ndarray, targets: Sequence[np.ndarray], item_topics: np.ndarray
) -> dict[str, float | None]:
    """Mean over users of Recall@20, Recall@50, HitRate@50, NDCG@50 and coverage@50.

    Args:
        top: ``[U, 50]`` item ids, best first, ``-1`` pads.
        targets: ``U`` arrays of each user's target items.
        item_topics: ``[N, T]`` topics of each item, ``-1`` pads.

    Returns:
        ``{name: mean}``; coverage@50 averages the users whose targets carry a topic
        (None when none does).
    """
    at20, at50 = ranking_metrics(top, targets, 20), ranking_metrics(top, targets, TOP_N)
    coverage = interest_coverage(targets, [row[row >= 0] for row in top], item_topics)
    defined = coverage[~np.isnan(coverage)]
    return {
        "recall@20": float(at20.recall.mean()),
        "recall@50": float(at50.recall.mean()),
        "hit_rate@50": float(at50.hit_rate.mean()),
        "ndcg@50": float(at50.ndcg.mean()),
        "coverage@50": float(defined.mean()) if defined.size else None,
    }


def _baseline(name: str, users: HeldOutUsers, lam: float) -> tuple[dict[str, Any], list[str]]:
    """Fit and rank one baseline; its metrics (with fit seconds) and notes."""
    started = time.perf_counter()
    n_items = users.data.n_items
    notes: list[str] = []
    if name == "mostpop":
        scoring = _baselines.mostpop_scoring(np.bincount(users.train_item, minlength=n_items))
    else:
        ease = _baselines.fit_ease(users.train_user, users.train_item, n_items, lam=lam)
        scoring = _baselines.ease_scoring(ease, users.liked, n_items)
        m = ease.item_ids.size
        notes.append(f"ease: lambda {lam:g}, {m:,} items modelled, {ease.weights.dtype} weights")
        if m < n_items:
            notes.append(
                f"ease: the catalogue has {n_items:,} items, above {_baselines.EASE_MAX_ITEMS:,}: "
                f"EASE models the {m:,} most popular; the others are never retrieved"
            )
    seconds = time.perf_counter() - started
    top = _baselines.rank_unseen(scoring, users.seen, TOP_N)
    metrics = list_metrics(top, users.targets, users.data.item_topics)
    return {**metrics, "interest_cosine": None, "train_seconds": seconds}, notes


def _trained(
    config: Config, data_dir: Path, run_dir: Path, users: HeldOutUsers
) -> dict[str, float | None]:
    """Train one run, embed the test users and all items with it, rank and measure."""
    result = train(config, data_dir, run_dir, progress=False, resume=False)
    model = implicit_model(load_run(run_dir, data_dir=data_dir).model, str(run_dir))
    with inference(model):
        items = embed_items(model, np.arange(users.data.n_items), batch_size=1024)
        followed = users.followed if config.model.followed_topics else None
        emb = embed_users(model, users.history, users.history_valid, followed, batch_size=256)
    scoring = _baselines.embedding_scoring(emb.embeddings, emb.slot_mask, items)
    top = _baselines.rank_unseen(scoring, users.seen, TOP_N)
    return {
        **list_metrics(top, users.targets, users.data.item_topics),
        "interest_cosine": interest_spread(emb.embeddings, emb.slot_mask)["cosine"],
        "train_seconds": float(result.wall_s),
    }


def summarize(runs: Sequence[dict[str, float | None]]) -> dict[str, dict[str, float] | None]:
    """Mean, sample std and count of every metric over runs (None values left out).

    >>> summarize([{"a": 1.0, "b": None}, {"a": 3.0, "b": None}])
    {'a': {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2}, 'b': None}
    """
    out: dict[str, dict[str, float] | None] = {}
    for name in runs[0]:
        values = [v for r in runs if (v := r[name]) is not None]
        out[name] = mean_std(values)._asdict() if values else None
    return out


def benchmark(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    config: Config | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    ease_lambda: float = _baselines.EASE_LAMBDA,
    progress: bool = True,
    workers: int = 1,
) -> BenchmarkResult:
    """Compare `models` under the ComiRec protocol; write ``benchmark.json`` and ``.md``.

    Args:
        data_dir: a directory written by ``multiembed prepare``.
        out_dir: where the report and the run directories (``runs/``) go.
        config: the base config (split seed and shares, examples, model sizes,
            training settings); default `Config()`.
        models: names among `BASELINES` and `TRAINED`.
        seeds: training seeds of the trained models.
        ease_lambda: EASE's L2 weight.
        progress: show a progress bar over the runs.
        workers: training processes, one core each; above 1 the trained runs go to a
            pool of spawned workers (results do not depend on it).

    Raises:
        ConfigError: an unknown model, no seed, or an explicit-interest base config.
        InputFileError, DataError: unusable data. TrainingDivergedError: a run diverged.
    """

    started = time.perf_counter()
    cfg = Config() if config is None else config
    names = parse_models(",".join(models))
    if not seeds:
        raise ConfigError(["seeds: expected at least one seed"])
    if cfg.model.kind != "implicit":
        raise ConfigError(
            [f'model.kind = "{cfg.model.kind}": the benchmark compares implicit models']
        )
    data, out = Path(data_dir), Path(out_dir)
    users = load_test_users(data, cfg)
    jobs: list[tuple[str, int | None]] = [(n, None) for n in names if n in BASELINES]
    jobs += [(n, s) for n in names if n not in BASELINES for s in seeds]
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    notes: list[str] = []
    bar = runs_bar(enabled=progress)
    pool = ProcessPoolExecutor(
        max(1, workers), mp_context=get_context("spawn"), initializer=_one_thread
    )
    with bar, pool:
        task = bar.add_task("benchmark", total=len(jobs))
        pending: list[tuple[str, int, Path, Future[dict[str, Any] | str]]] = []
        for name, seed in jobs:
            if seed is None:
                bar.update(task, description=name)
                metrics, said = _baseline(name, users, ease_lambda)
                notes += said
                runs[name].append({"seed": None, "run_dir": None, "metrics": metrics})
                bar.advance(task)
            else:
                run_dir = out / "runs" / f"{name}-seed{seed}"
                config_ = run_config(cfg, name, seed)
                job = pool.submit(as_message, _trained, config_, data, run_dir, users)
                pending.append((name, seed, run_dir, job))
        bar.update(task, description=f"training on {max(1, workers)} worker(s)")
        for name, seed, run_dir, job in pending:  # submission order: a stable report
            outcome = job.result()
            if isinstance(outcome, str):
                for _, _, _, other in pending:
                    other.cancel()
                raise DataError(f"{name}, seed {seed}: {outcome}")
            runs[name].append({"seed": seed, "run_dir": str(run_dir), "metrics": outcome})
            bar.advance(task)
    report = {
        "format_version": 1,
        "data_dir": str(data),
        "split": {
            "protocol": "comirec",
            "seed": cfg.split.seed,
            "valid_share": cfg.split.valid_share,
            "test_share": cfg.split.test_share,
            "history_share": cfg.split.history_share,
        },
        "users": len(users.targets),
        "items": users.data.n_items,
        "top_n": TOP_N,
        "seeds": list(seeds),
        "models": {
            n: {"runs": rs, "summary": summarize([r["metrics"] for r in rs])}
            for n, rs in runs.items()
        },
        "notes": notes,
        "seconds": round(time.perf_counter() - started, 3),
    }
    json_path, md_path, table = write_outputs(report, out)
    return BenchmarkResult(report, json_path, md_path, table)
