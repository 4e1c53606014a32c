"""The progress bar of runs, trials and evaluation stages: description, bar, n/N, elapsed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress


def runs_bar(*columns: str, enabled: bool) -> Progress:
    """A rich `Progress` with a description, a bar, ``done/total``, the elapsed time and
    then `columns` (rich text columns, e.g. ``"{task.fields[note]}"``).

    Rich is imported here, on first use, so that importing its users stays cheap.

    >>> bar = runs_bar(enabled=False)
    >>> with bar:
    ...     task = bar.add_task("runs", total=2)
    ...     bar.advance(task)
    ...     bar.tasks[0].completed
    1
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        *columns,
        disable=not enabled,
    )
