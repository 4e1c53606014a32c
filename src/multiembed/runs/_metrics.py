"""The run's metrics log, ``RUN/metrics.jsonl``: its name and the validation value it headlines.

Training appends two kinds of line, both with ``step`` (and ``epoch``): training
lines (the loss and its companions) and validation lines, whose ``validation``
holds ``{"hr@K": rate}`` (or ``{"explicit_hr@K": rate}`` for a conditional model)
on the held-out validation slice. `VALIDATION_K` is the cut-off always measured,
and `headline` picks the value progress bars, plots and reports show.
"""

from __future__ import annotations

from collections.abc import Mapping

METRICS_FILE = "metrics.jsonl"
"""The metrics log's name inside a run directory."""
VALIDATION_K = 100
"""The cut-off always measured (with ``eval.ks``): the one the progress bar and plots show."""
HEADLINE_NAMES = (f"hr@{VALIDATION_K}", f"explicit_hr@{VALIDATION_K}")


def headline(metrics: Mapping[str, float | None]) -> float | None:
    """The value progress bars and plots show: ``hr@100``, or ``explicit_hr@100``.

    >>> headline({"hr@50": 0.25, "hr@100": 0.5}), headline({"explicit_hr@100": None})
    (0.5, None)
    """
    for name in HEADLINE_NAMES:
        if name in metrics:
            return metrics[name]
    return None
