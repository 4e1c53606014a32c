"""``multiembed --version``: the installed package's version."""

from __future__ import annotations

from typing import Annotated

import typer

import multiembed


def package_version() -> str:
    """The version the package was installed with, else the module's `__version__`.

    >>> package_version() == multiembed.__version__
    True
    """
    from importlib import metadata  # here: the import costs more than the rest of `--help`

    try:
        return metadata.version("multiembed")
    except metadata.PackageNotFoundError:  # run from a source tree, not installed
        return multiembed.__version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"multiembed {package_version()}")
        raise typer.Exit()


VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
    ),
]
"""The root command's ``--version`` flag (eager: it runs before any command)."""
