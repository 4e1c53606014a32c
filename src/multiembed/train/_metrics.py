"""Training telemetry: ``RUN/metrics.jsonl`` lines, their running figures, the progress bar.

``metrics.jsonl`` holds three kinds of line, each with ``step`` (and ``epoch``):
training lines (``loss``, ``loss_avg``, ``batch`` (the step's examples: an epoch's
last batch is short), ``lr``, ``examples_per_s``, ``grad_norm`` and the objective's
fields) every ``train.log_every`` steps, and validation lines
(``validation``: ``{"hr@K": rate}``, ``validation_records``, ``validation_s``)
every ``train.validate_every`` steps (`multiembed.train._validation`); and one line
(``interests``: the `InterestChoice` document) where a run chooses to train one
embedding (``train.select_during``). The file's name and the value validation lines
headline are `multiembed.runs`'s.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from multiembed._files import atomic_write_bytes
from multiembed.runs import METRICS_FILE


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class MetricsLog:
    """Appends one JSON object per logged step to ``RUN/metrics.jsonl``.

    Example:
        >>> import tempfile
        >>> log = MetricsLog(Path(tempfile.mkdtemp()))
        >>> log.append({"step": 1, "loss": 2.5}); log.append({"step": 2, "loss": float("nan")})
        >>> log.truncate_after(1); log.path.read_text()
        '{"step": 1, "loss": 2.5}\\n'
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / METRICS_FILE

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps({k: _clean(v) for k, v in record.items()}) + "\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def truncate_after(self, step: int) -> None:
        """Drop lines past ``step`` (and a torn last line): a resumed run logs them again."""
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and int(record.get("step", 0)) <= step:
                kept.append(line + "\n")
        atomic_write_bytes(self.path, "".join(kept).encode())


class Window:
    """The running figures of the next training line: the mean loss of its updates and
    examples per second of training time (a validation's time paused out).

    Example:
        >>> w = Window()
        >>> w.add(2.0, 64); w.add(None, 64); w.add(3.0, 32)  # None: a step without update
        >>> w.updates, w.take()[0], w.updates
        (2, 2.5, 0)
    """

    def __init__(self) -> None:
        self.loss, self.updates, self.examples = 0.0, 0, 0
        self.start = time.perf_counter()

    def add(self, loss: float | None, examples: int) -> None:
        """Count one step of ``examples``; ``loss`` None: it made no update."""
        if loss is not None:
            self.loss += loss
            self.updates += 1
        self.examples += examples

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` spent on something else out of examples/s."""
        self.start += seconds

    def take(self) -> tuple[float, float]:
        """``(mean loss, examples/s)`` of the window (one update at least); starts the next."""
        now = time.perf_counter()
        means = self.loss / self.updates, self.examples / max(now - self.start, 1e-9)
        self.loss, self.updates, self.examples = 0.0, 0, 0
        self.start = now
        return means


class ProgressBar:
    """A rich progress bar over steps showing loss, examples/s and ETA (no-op when disabled).

    With ``validation`` set (the name of the validated metric, e.g. ``"HR@100"``) it
    also shows the last validated value, and says so while a validation runs.
    """

    def __init__(
        self, total: int, done: int, *, enabled: bool, title: str, validation: str | None = None
    ) -> None:
        self._progress: Progress | None = None
        self._title = title
        self._validation = validation
        if not enabled:
            return
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} ex/s"),
        ]
        if validation is not None:
            columns.append(TextColumn(f"{validation} {{task.fields[validated]}}"))
        self._progress = Progress(
            *columns,
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(
            title, total=total, completed=done, loss="-", speed="-", validated="-"
        )
        self._progress.start()

    def update(self, step: int, loss: float | None, examples_per_s: float | None) -> None:
        if self._progress is None:
            return
        fields: dict[str, Any] = {"loss": "-" if loss is None else f"{loss:.4f}"}
        if examples_per_s is not None:
            fields["speed"] = f"{examples_per_s:,.0f}"
        self._progress.update(self._task, completed=step, **fields)

    def validating(self) -> None:
        """Say that a validation is running (until `validated`)."""
        if self._progress is not None:
            self._progress.update(self._task, description=f"{self._title} (validating)")

    def validated(self, value: float | None) -> None:
        """Show the validated metric's new value."""
        if self._progress is None:
            return
        shown = "-" if value is None else f"{value:.4f}"
        self._progress.update(self._task, description=self._title, validated=shown)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
