"""`multiembed mapping template`: a commented column mapping with every key, to start from."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.errors import ConfigError

mapping_app = typer.Typer(
    help="The column mapping of your own CSV/Parquet files (prepare --dataset csv/parquet).",
    no_args_is_help=True,
)


@mapping_app.command("template")
@friendly_errors
def template_command(
    out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="File to write (default: standard output)."),
    ] = None,
) -> None:
    """Write a commented example mapping with every key, its meaning and accepted values."""
    from multiembed.data.adapters.template import mapping_template

    text = mapping_template()
    if out is None:
        sys.stdout.write(text)
        return
    if out.exists():
        raise ConfigError([f"--out {out}: the file exists; choose a new name or remove it"])
    out.write_text(text, encoding="utf-8")
    typer.echo(
        f"wrote {out}: edit the column names, then "
        f"multiembed prepare --dataset csv --source LOG --mapping {out} --out DIR"
    )
