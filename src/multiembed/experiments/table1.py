"""Table 1: single-embedding vs. the implicit multi-embedding models, HR@100 and HR@1000.

Every model of `MODELS` is trained with the experiment's config (only
``model.name`` changes) for every seed and evaluated with the paper's protocol;
the report has HR@100, HR@1000, interest coverage and served HR (mean ± std over
seeds), training throughput, the training curves and a bar chart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from multiembed.config import Config
from multiembed.data.schema import ITEMS_FILE
from multiembed.experiments import _report
from multiembed.experiments._runs import RunResult, announcer, run_jobs, with_overrides

MODELS = ("single", "self_attention", "interest_token", "mind", "pfs", "dcm")
METRICS = {
    "hr@100": "HR@100",
    "hr@1000": "HR@1000",
    "coverage_round_robin": "coverage",
    "served_hr_round_robin": "served HR",
}


def run(
    data_dir: Path,
    out_dir: Path,
    *,
    config: Config,
    seeds: tuple[int, ...],
    progress: bool = True,
    workers: int = 1,
    models: tuple[str, ...] = MODELS,
) -> Path:
    """Train and evaluate every model for every seed (on `workers` processes); write
    ``out_dir/report.md``."""
    say = announcer(progress)
    skipped = unsupported(models, data_dir)
    if say is not None:
        for name, why in skipped.items():
            say(f"skipping {name}: {why}")
    jobs = [
        (name, with_overrides(config, {"model": {"name": name}}))
        for name in models
        if name not in skipped
    ]
    results = run_jobs(
        jobs, data_dir, out_dir, seeds, progress=progress, announce=say, workers=workers
    )
    path = write(out_dir, results, config=config, title="Table 1: implicit multi-embedding models")
    if skipped:
        notes = "".join(f"- `{name}` not run: {why}.\n" for name, why in skipped.items())
        path.write_text(path.read_text(encoding="utf-8") + "\n" + notes, encoding="utf-8")
    return path


def unsupported(models: tuple[str, ...], data_dir: Path) -> dict[str, str]:
    """Models the prepared data cannot feed, with the reason.

    PinnerFormer-style subsequences cluster the items' pretrained vectors into
    topics, so they need a `vector` column in `items.parquet`.
    """
    names = pq.read_schema(Path(data_dir) / ITEMS_FILE).names
    if "pfs" in models and "vector" not in names:
        return {"pfs": "the items have no pretrained vectors to cluster into topics"}
    return {}


def write(
    out_dir: Path, results: dict[str, list[RunResult]], *, config: Config, title: str
) -> Path:
    """The report of trained runs (also the demo's): table, throughput, curves, bars."""
    summaries = {name: _report.summarize([r.report for r in rs]) for name, rs in results.items()}
    n_seeds = len(next(iter(results.values())))
    throughput = _report.markdown_table(
        ["model", "examples/s", "steps", "final loss"],
        [
            [
                name,
                _report.fmt(_report.mean_std([r.training["examples_per_s"] for r in rs]), 0),
                str(rs[0].training["steps"]),
                _report.fmt(_final_loss(rs), 3),
            ]
            for name, rs in results.items()
        ],
    )
    curves = _report.plot_curves(
        {name: [r.run_dir for r in rs] for name, rs in results.items()},
        out_dir / "training_curves.png",
        title="training loss",
    )
    bars = _report.plot_bars(
        summaries, METRICS, out_dir / "hit_rates.png", title=f"mean ± std over {n_seeds} seed(s)"
    )
    first_runs = next(iter(results.values()))
    first = first_runs[0].report
    corpus, records = first["corpus"], first["records"]
    seed_list = ", ".join(r.run_dir.name.rsplit("-seed", 1)[-1] for r in first_runs)
    sections = [
        f"Mean ± std over {n_seeds} seed(s) ({seed_list}). "
        f"Corpus: the {corpus['size']:,} most-engaged items "
        f"({corpus['positives_in_corpus']:.1%} of evaluation positives inside); "
        f"{records['evaluated']:,} evaluation records. Coverage and served HR are of the "
        f"served list (budget {config.eval.budget}, round-robin with dedup).",
        _report.seed_table(summaries, METRICS),
        "## Training\n\n" + throughput,
        f"![training curves]({curves.name})\n\n![hit rates]({bars.name})",
    ]
    return _report.write_report(out_dir, title, sections)


def _final_loss(results: list[RunResult]) -> dict[str, Any] | None:
    """Mean ± std of the runs' last training loss; None (printed ``-``) when none has one."""
    losses = [r.training["final_loss"] for r in results if r.training["final_loss"]]
    return _report.mean_std(losses) if losses else None
