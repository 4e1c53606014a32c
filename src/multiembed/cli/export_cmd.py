"""`multiembed export`: a run's item (and user) embeddings as Parquet under raw ids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from multiembed.cli._errors import friendly_errors

console = Console(highlight=False, markup=False, soft_wrap=True)


@friendly_errors
def export_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `multiembed train`.")],
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Directory for the Parquet files.")
    ],
    users: Annotated[
        Path | None,
        typer.Option("--users", help="CSV of user histories: user_id,item_id,timestamp (raw ids)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Prepared data directory (item validity for the users)."),
    ] = None,
) -> None:
    """Export item embeddings (and user embeddings of a history CSV) for a vector database."""
    from multiembed.export import export_run

    summary = export_run(run, out, users_csv=users, data_dir=data)
    console.print(
        f"{summary['model_version']}: {summary['n_items']:,} item embeddings "
        f"(D = {summary['dim']}) -> {out / 'items.parquet'}"
    )
    if users is not None:
        console.print(
            f"{summary['n_users']:,} users, {summary['n_user_rows']:,} embeddings -> "
            f"{out / 'users.parquet'} · history rows used {summary['rows_used']:,} of "
            f"{summary['rows_in']:,}"
        )
        if summary["unknown_item_rows"]:
            console.print(
                f"unknown item ids: {summary['unknown_item_rows']:,} rows "
                f"({summary['unknown_item_ids']:,} distinct ids) left out, listed in "
                f"{out / 'quarantine.parquet'}"
            )
