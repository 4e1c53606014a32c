"""`multiembed` command line: prepare data, download datasets, run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ConfigOpt, PresetOpt, ProgressOpt, WorkersOpt, plain_console
from multiembed.cli._threads import set_process_threads
from multiembed.cli._version import VersionOpt
from multiembed.cli.benchmark_cmd import benchmark_command
from multiembed.cli.config_cmd import config_app, presets_command
from multiembed.cli.eval_cmd import evaluate_command
from multiembed.cli.experiment_cmd import experiment_command
from multiembed.cli.export_cmd import export_command
from multiembed.cli.mapping_cmd import mapping_app
from multiembed.cli.onnx_cmd import export_onnx_command
from multiembed.cli.serve_cmd import retrieve_command, serve_command
from multiembed.cli.simulate_cmd import simulate_command
from multiembed.cli.train_cmd import train_command
from multiembed.cli.tune_cmd import tune_command
from multiembed.config import load_config

app = typer.Typer(
    name="multiembed",
    help="Multi-embedding retrieval over implicit (DCM) and explicit (CR) user interests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(
    help="Public datasets: download official releases.", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")


@app.callback()
def _root(version: VersionOpt = False) -> None:
    """Multi-embedding retrieval over implicit (DCM) and explicit (CR) user interests."""


def _print_report(report: dict, out: Path) -> None:
    table = Table(title=f"{report['dataset']}: prepared into {out}", show_lines=False)
    table.add_column("table")
    for column in ("rows in", "kept", "quarantined"):
        table.add_column(column, justify="right")
    for name, t in report["tables"].items():
        table.add_row(
            name, f"{t['rows_in']:,}", f"{t['rows_kept']:,}", f"{t['rows_quarantined']:,}"
        )
    plain_console.print(table)
    counts = report["counts"]
    plain_console.print(
        "users {users:,} · items {items:,} · engagements {engagements:,} · topics {topics:,} "
        "· follows {user_topics:,}".format(**counts)
    )
    span, window = report["time_span"], report["plausible_window"]
    plain_console.print(
        f"engagements from {span['from']} to {span['to']} UTC "
        f"(plausible window {window['from']} .. {window['to']})"
    )
    for name, t in report["tables"].items():
        for rule, n in t["quarantined_by_rule"].items():
            plain_console.print(f"  quarantined {name}: {rule}: {n:,}")
    for note in report.get("notes", []):
        plain_console.print(f"  note: {note}")
    plain_console.print(
        f"report: {out / 'report.json'} · quarantine: {out / report['quarantine_file']}"
    )


@app.command()
@friendly_errors
def prepare(
    dataset: Annotated[
        str, typer.Option(help="synthetic, movielens, lastfm, taobao, csv, parquet")
    ],
    out: Annotated[Path, typer.Option(file_okay=False, help="Directory for the canonical tables.")],
    source: Annotated[
        Path | None, typer.Option(help="Folder or file of the raw source (not for synthetic).")
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            help="csv/parquet: TOML column mapping of your files "
            "(`multiembed mapping template` writes a commented example with every key)."
        ),
    ] = None,
    config: ConfigOpt = None,
    preset: PresetOpt = None,
) -> None:
    """Validate a dataset into canonical Parquet tables; bad rows go to a quarantine file."""
    from multiembed.data.prepare import prepare_dataset

    cfg = load_config(config, preset=preset)  # defaults, preset, then the file
    with plain_console.status("preparing") as status:
        report = prepare_dataset(
            dataset, source, out, config=cfg, mapping_file=mapping, progress=status.update
        )
    _print_report(report, out)


@datasets_app.command("download")
@friendly_errors
def download(
    name: Annotated[str, typer.Argument(help="Dataset release name.")],
    to: Annotated[Path, typer.Option("--to", file_okay=False, help="Destination folder.")],
) -> None:
    """Download an official public release and verify its checksum."""
    from multiembed.data.download import download as fetch

    path = fetch(name, to)
    plain_console.print(f"downloaded {name} into {path}")


@app.command()
@friendly_errors
def demo(
    out: Annotated[
        Path, typer.Option(file_okay=False, help="Working directory of the demo.")
    ] = Path("demo_out"),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file (or a preset's name); its settings replace the demo's defaults "
            "and --preset's.",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="A shipped preset over the demo's defaults, e.g. paper.",
        ),
    ] = None,
    progress: ProgressOpt = True,
    workers: WorkersOpt = None,
) -> None:
    """The main job: synthetic world, train single/MIND/DCM, evaluate, print and report."""
    from multiembed.experiments import default_workers
    from multiembed.experiments.demo import demo_config, run_demo

    cfg = demo_config(config, preset=preset)
    workers = default_workers() if workers is None else workers
    run_demo(out, cfg, progress=progress, console=plain_console, workers=workers)


app.command("presets")(presets_command)
app.add_typer(config_app, name="config")
app.add_typer(mapping_app, name="mapping")
app.command("train")(train_command)
app.command("tune")(tune_command)
app.command("evaluate")(evaluate_command)
app.command("export")(export_command)
app.command("export-onnx")(export_onnx_command)
app.command("experiment")(experiment_command)
app.command("benchmark")(benchmark_command)
app.command("serve")(serve_command)
app.command("retrieve")(retrieve_command)
app.command("simulate")(simulate_command)


def main() -> None:
    set_process_threads()  # before any command loads NumPy, FAISS or torch
    app()


if __name__ == "__main__":
    main()
