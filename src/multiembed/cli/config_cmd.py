"""`multiembed presets` and `multiembed config show`: the shipped presets and every setting.

Only the configuration package is imported: these commands answer at once.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import ConfigOpt, PresetOpt
from multiembed.config import (
    load_config,
    preset_description,
    preset_names,
    reference_markdown,
    settings,
    to_toml,
    toml_value,
)
from multiembed.errors import ConfigError

PIPED_WIDTH = 1_000
"""Columns of a table written to a pipe or file without ``COLUMNS``: wide enough that
every row stays on one line (rich would wrap it at 80 columns), so it can be grepped."""


def _console() -> Console:
    """Rich's console, at the terminal's width or, piped without ``COLUMNS``, `PIPED_WIDTH`."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(
        highlight=False, markup=False, soft_wrap=True, width=PIPED_WIDTH if piped else None
    )


config_app = typer.Typer(
    help="The configuration: every setting with its value, default, rule and description.",
    no_args_is_help=True,
)


class Format(StrEnum):
    table = "table"
    toml = "toml"
    markdown = "markdown"


@friendly_errors
def presets_command() -> None:
    """List the shipped presets: use one with --preset NAME (or --config NAME)."""
    table = Table(title="presets (multiembed config show --preset NAME shows every setting)")
    table.add_column("preset", no_wrap=True)
    table.add_column("description")
    for name in preset_names():
        table.add_row(name, preset_description(name))
    _console().print(table)


@config_app.command("show")
@friendly_errors
def show_command(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table: every setting; toml: a complete file of the effective settings; "
            "markdown: the configuration reference (docs/config.md).",
        ),
    ] = Format.table,
) -> None:
    """Every setting as section.key: its value, default, rule and description."""
    if fmt is Format.markdown:
        if preset is not None or config is not None:
            raise ConfigError(
                [
                    "--format markdown: the reference shows the defaults; it takes no --preset or "
                    "--config (use --format table or toml for their values)"
                ]
            )
        typer.echo(reference_markdown(), nl=False)  # verbatim: no markup, no wrapping
        return
    cfg = load_config(config, preset=preset)
    origin = [f"--preset {preset}"] if preset is not None else []
    origin += [f"--config {config}"] if config is not None else []
    label = " ".join(origin) or "the defaults"
    if fmt is Format.toml:
        comment = f"multiembed configuration: {label}, every setting written out."
        typer.echo(to_toml(cfg, comment=comment), nl=False)
        return
    table = Table(title=f"configuration of {label} (* differs from the default)")
    for column in ("key", "value", "default", "rule", "description"):
        table.add_column(column, no_wrap=column == "key")
    for s in settings(cfg):
        changed = "*" if s.value != s.default else ""
        table.add_row(s.key + changed, toml_value(s.value), toml_value(s.default), s.rule, s.doc)
    _console().print(table)
