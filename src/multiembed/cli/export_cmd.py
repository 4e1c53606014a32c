"""`multiembed export`: a run's item (and user) embeddings as Parquet under raw ids."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from multiembed.cli._errors import friendly_errors
from multiembed.cli._options import console
from multiembed.errors import ConfigError


@friendly_errors
def export_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `multiembed train`.")],
    out: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Directory for the Parquet files.")
    ],
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            help="User histories: a CSV with user_id,item_id,timestamp (raw ids), or any "
            "layout a --mapping describes.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Prepared data directory (item validity for the users)."),
    ] = None,
    mapping: Annotated[
        Path | None,
        typer.Option(
            "--mapping",
            help="TOML column mapping of the --users file (as for prepare): its own column "
            "names, time formats, delimiter; Parquet when the file ends in .parquet.",
        ),
    ] = None,
) -> None:
    """Export item embeddings (and user embeddings of a history CSV) for a vector database."""
    from multiembed.export import export_run

    if mapping is not None and users is None:
        raise ConfigError(["--mapping: describes the --users file; give --users too"])
    summary = export_run(run, out, users_csv=users, data_dir=data, users_mapping=mapping)
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
        if summary.get("refused_rows"):
            console.print(
                f"refused rows: {summary['refused_rows']:,} (a missing id or a time that is "
                f"not a time), listed in {out / 'quarantine.parquet'}"
            )
        if summary["unknown_item_rows"]:
            console.print(
                f"unknown item ids: {summary['unknown_item_rows']:,} rows "
                f"({summary['unknown_item_ids']:,} distinct ids) left out, listed in "
                f"{out / 'quarantine.parquet'}"
            )
