"""Writing an experiment's report: Markdown tables of mean ± std over seeds, and PNG plots.

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from multiembed.eval import metrics
from multiembed.eval.evaluate import summarize_seeds
from multiembed.runs import METRICS_FILE, VALIDATION_K, headline

REPORT_FILE = "report.md"
Summary = dict[str, dict[str, Any]]
"""``{metric: {"mean", "std", "n"}}`` of one segment (see `summarize_seeds`)."""


def summarize(reports: Sequence[Mapping[str, Any]], segment: str = "all") -> Summary:
    """Mean and std over the seeds' ``eval.json`` reports, for one segment."""
    return summarize_seeds(reports).get(segment, {})


def mean_std(values: Sequence[float]) -> dict[str, Any]:
    """``{"mean", "std", "n"}`` of plain values, the form `fmt` and a `Summary` take:
    `multiembed.eval.metrics.mean_std` (sample std, 0 for one value) as a dict.

    Raises:
        MetricInputError: no values, or a non-finite one.

    >>> mean_std([1.0, 3.0])
    {'mean': 2.0, 'std': 1.4142135623730951, 'n': 2}
    """
    return metrics.mean_std(values)._asdict()


def fmt(stat: Mapping[str, Any] | None, digits: int = 4) -> str:
    """``mean ± std`` (or ``-`` when missing); the std is left out for one seed.

    >>> fmt({"mean": 0.41234, "std": 0.0123, "n": 3})
    '0.4123 ± 0.0123'
    >>> fmt({"mean": 7.5, "std": 0.0, "n": 1}, digits=1)
    '7.5'
    """
    if stat is None:
        return "-"
    if stat.get("n", 1) <= 1:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table; the first column is left-aligned, the others right.

    >>> print(markdown_table(["model", "HR@100"], [["dcm", "0.5"]]))
    | model | HR@100 |
    |:--|--:|
    | dcm | 0.5 |
    """
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|:--|" + "--:|" * (len(header) - 1))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def seed_table(
    summaries: Mapping[str, Summary], metrics: Mapping[str, str], *, first: str = "model"
) -> str:
    """One row per entry of `summaries`, one column per metric (``{name: header}``)."""
    rows = [
        [label, *(fmt(summary.get(metric)) for metric in metrics)]
        for label, summary in summaries.items()
    ]
    return markdown_table([first, *metrics.values()], rows)


def write_report(out_dir: Path, title: str, sections: Sequence[str]) -> Path:
    """Write ``out_dir/report.md``: a title and the sections, blank-line separated."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text(f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections) + "\n")
    return path


def _series(run_dir: Path, value: Callable[[dict[str, Any]], Any]) -> tuple[list[int], list[float]]:
    """Steps and numbers `value(line)` of the lines of ``RUN/metrics.jsonl`` that have both
    (none when the file is missing)."""
    path = run_dir / METRICS_FILE
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    points = [
        (int(record["step"]), float(v))
        for record in lines
        if isinstance(v := value(record), int | float) and "step" in record
    ]
    return [step for step, _ in points], [v for _, v in points]


def read_losses(run_dir: Path) -> tuple[list[int], list[float]]:
    """Steps and losses logged in ``RUN/metrics.jsonl`` (missing or null losses skipped).

    Each point is ``loss_avg``, the mean loss over the steps since the previous line,
    where the line has it; else that step's ``loss``. The last batch of an epoch is
    short, and with few in-batch negatives its loss alone is far lower: plotted as is,
    it drew a dip at every epoch's end.
    """
    return _series(run_dir, lambda record: record.get("loss_avg", record.get("loss")))


def read_validation(run_dir: Path) -> tuple[list[int], list[float]]:
    """Steps and validation HR@100 (``hr@100`` or ``explicit_hr@100``) of ``RUN/metrics.jsonl``.

    Validation lines (``train.validate_every``) without a value are skipped.
    """
    return _series(
        run_dir,
        lambda record: headline(c) if isinstance(c := record.get("validation"), dict) else None,
    )


def plot_curves(runs: Mapping[str, Sequence[Path]], path: Path, *, title: str) -> Path:
    """Training loss and validation HR@100 per step of every run, side by side.

    Runs of one label (seeds) share a colour. The HR panel shows the lines that
    ``train.validate_every`` wrote; it says so when no run has one.
    """
    fig, (loss_ax, hr_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    validated = False
    for i, (label, dirs) in enumerate(runs.items()):
        for j, run_dir in enumerate(dirs):
            style = {
                "color": colours[i % len(colours)],
                "alpha": 0.85 if j == 0 else 0.45,
                "label": label if j == 0 else None,
            }
            loss_ax.plot(*read_losses(run_dir), **style)
            steps, rates = read_validation(run_dir)
            if steps:
                validated = True
                hr_ax.plot(steps, rates, marker="o", markersize=3, **style)
    loss_ax.set(ylabel="training loss (Eq. 9), mean since the previous point", title=title)
    hr_ax.set(ylabel=f"validation HR@{VALIDATION_K}", title="HR on the validation slice")
    if validated:
        hr_ax.legend()
    else:
        note = "no validation logged\n(train.validate_every = 0,\nor fewer steps than it)"
        hr_ax.text(0.5, 0.5, note, ha="center", va="center", transform=hr_ax.transAxes, color="0.4")
    for ax in (loss_ax, hr_ax):
        ax.set(xlabel="step")
        ax.grid(alpha=0.3)
    if runs:
        loss_ax.legend()
    return save(fig, path)


def plot_bars(
    summaries: Mapping[str, Summary], metrics: Mapping[str, str], path: Path, *, title: str
) -> Path:
    """One panel per metric, each on its own scale: a bar per entry of `summaries` (the
    mean, with the std over seeds as an error bar). Hit rates (0-1) and diversity (a
    count of topics) never share an axis."""
    labels = list(summaries)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    bar_colours = [colours[i % len(colours)] for i in range(len(labels))]
    n = max(1, len(metrics))
    fig, axes = plt.subplots(
        1, n, figsize=(max(4.0, 0.5 * len(labels) + 1.5) * n, 4.2), squeeze=False
    )
    for ax, (metric, header) in zip(axes[0], metrics.items(), strict=True):
        stats = [summaries[label].get(metric) for label in labels]
        means = [s["mean"] if s else 0.0 for s in stats]
        errors = [s.get("std", 0.0) if s else 0.0 for s in stats]
        ax.bar(range(len(labels)), means, yerr=errors, capsize=3, color=bar_colours)
        ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
        ax.set(ylabel=header, title=header)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, path)


def save(fig: Any, path: Path) -> Path:
    """Save a figure as PNG and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
