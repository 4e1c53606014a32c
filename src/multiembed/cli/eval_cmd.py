"""`multiembed evaluate`: a run directory and its data -> ``RUN/eval.json`` and a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import PresetOpt, ProgressOpt, plain_console


@friendly_errors
def evaluate_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `multiembed train`.")],
    data: Annotated[Path, typer.Option("--data", help="Prepared data directory.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file (or a preset's name); its eval table replaces the run's "
            "evaluation settings.",
        ),
    ] = None,
    preset: PresetOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Offline evaluation: HR@K (paper protocol), served lists, ComiRec metrics, segments."""
    from multiembed.api import evaluate

    result = evaluate(run, data, config=config, preset=preset, progress=progress)
    report = result.report
    plain_console.print(_table(report))
    corpus = report["corpus"]
    plain_console.print(
        f"{report['protocol']} protocol · corpus {corpus['size']:,} items "
        f"({corpus['positives_in_corpus']:.1%} of positives inside) · "
        f"{report['records']['evaluated']:,} records · {report['seconds']:.1f} s"
    )
    plain_console.print(f"written: {result.report_file}")


def _table(report: dict[str, Any]) -> Table:
    segments = report["segments"]
    table = Table(title=f"evaluation of {report.get('model_version') or 'the model'}")
    table.add_column("metric", no_wrap=True)
    for name in segments:
        table.add_column(name, justify="right", no_wrap=True)
    for count in ("n_records", "n_users"):
        table.add_row(count[2:], *(f"{seg[count]:,}" for seg in segments.values()))
    for metric in segments["all"]["metrics"]:
        cells = []
        for seg in segments.values():
            value = seg["metrics"].get(metric)
            cells.append("-" if value is None else f"{value:.4f}" if value <= 1 else f"{value:.1f}")
        table.add_row(metric, *cells)
    return table
