"""`multiembed benchmark DATA`: models compared under the ComiRec protocol, as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ConfigOpt, PresetOpt, ProgressOpt, WorkersOpt, console
from multiembed.config import load_config


@friendly_errors
def benchmark_command(
    data: Annotated[Path, typer.Argument(help="Prepared data directory (`multiembed prepare`).")],
    models: Annotated[
        str,
        typer.Option("--models", help="Comma-separated: mostpop, ease, single, mind, dcm, ..."),
    ] = "mostpop,ease,single,mind,self_attention,dcm",
    seeds: Annotated[
        str, typer.Option("--seeds", help="Training seeds of the trained models, e.g. 0,1,2.")
    ] = "0,1,2",
    out: Annotated[
        Path,
        typer.Option("--out", file_okay=False, help="Report directory (runs go to OUT/runs/)."),
    ] = Path("benchmark_out"),
    config: ConfigOpt = None,
    preset: PresetOpt = None,
    progress: ProgressOpt = True,
    workers: WorkersOpt = None,
) -> None:
    """Recall@20/50, HR@50, NDCG@50, coverage and interest cosine under the ComiRec protocol."""
    from multiembed.experiments import default_workers
    from multiembed.experiments.benchmark import benchmark, parse_seeds

    result = benchmark(
        data,
        out,
        config=load_config(config, preset=preset),
        models=models.split(","),
        seeds=parse_seeds(seeds),
        progress=progress,
        workers=default_workers() if workers is None else workers,
    )
    console.print(result.table)
    console.print(f"written: {result.markdown_path} · {result.json_path}")
