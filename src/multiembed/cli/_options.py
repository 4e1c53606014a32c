"""Command-line options that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(highlight=False, markup=False, soft_wrap=True)
"""What commands print: text verbatim (data may hold [brackets]), long lines whole."""
plain_console = Console(highlight=False, markup=False)
"""The same, wrapping long lines at the terminal's width."""

ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress")]
"""Show progress bars (default on)."""

WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Training processes, one core each (default: up to 2)."),
]
"""Processes the independent training runs of a command go to (None: `default_workers`)."""

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML configuration file, or a preset's name (`multiembed presets`); "
        "with --preset, the file's keys win over the preset's.",
    ),
]
"""A configuration file (or a preset name when no such file exists)."""

PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--preset",
        metavar="NAME",
        help="Start from a shipped preset (`multiembed presets`), e.g. paper.",
    ),
]
"""A shipped preset the configuration starts from, under --config's file."""
