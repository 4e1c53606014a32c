"""A progress display of evaluation stages (rich), or nothing when disabled."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import TaskID

from multiembed._progress import runs_bar


class Stages:
    """One progress bar per stage; a new stage completes the previous one.

    >>> with Stages(enabled=False) as stages:
    ...     step = stages.stage("scoring", total=2)
    ...     step(); step()
    """

    def __init__(self, *, enabled: bool) -> None:
        self._progress = runs_bar(enabled=enabled)  # disabled: it keeps count, shows nothing
        self._task: TaskID | None = None

    def __enter__(self) -> Stages:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish()
        self._progress.stop()

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)

    def stage(self, description: str, total: int) -> Callable[[], None]:
        """Start a stage of `total` steps; returns the function that advances it by one."""
        self._finish()
        task = self._progress.add_task(description, total=max(total, 1))
        self._task = task
        return lambda: self._progress.advance(task)
