"""Command-line options that several commands share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress")]
"""Show progress bars (default on)."""

WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=1, help="Training processes, one core each (default: up to 2)."),
]
"""Processes the independent training runs of a command go to (None: `default_workers`)."""
