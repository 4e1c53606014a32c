"""The results of a search: a Markdown table, the same as JSON, and the best trial's config.

>>> from multiembed.tune._space import Choices, SearchSpace
>>> space = SearchSpace(trials=2, metric="hr@100", dimensions=(Choices("model.k", (2, 4)),))
>>> rows = [
...     TrialRecord(0, "complete", {"model.k": 2}, 0.41, 4, 3.2, ""),
...     TrialRecord(1, "pruned", {"model.k": 4}, 0.12, 2, 1.5, "below the median at validation 2"),
... ]
>>> print(markdown_table(space, rows, best=0))
| trial | state | model.k | hr@100 | validations | seconds | note |
| ---: | --- | ---: | ---: | ---: | ---: | --- |
| 0 | complete (best) | 2 | 0.4100 | 4 | 3.2 |  |
| 1 | pruned | 4 | 0.1200 | 2 | 1.5 | below the median at validation 2 |
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from multiembed.config import Config, markdown_cell, to_toml, toml_value
from multiembed.tune._space import SearchSpace, configured

RESULTS_MD, RESULTS_JSON, BEST_TOML = "results.md", "results.json", "best.toml"


class TrialRecord(NamedTuple):
    """One trial of a search, as the results table shows it.

    Attributes:
        number: the trial's number (its run directory is ``trials/NNN``).
        state: ``complete``, ``pruned``, ``failed``, ``interrupted`` (its values run
            again as a new trial when the search resumes) or ``running``.
        values: ``{"section.key": value}`` the trial trained with.
        metric: a complete trial's value (the metric at the validation whose weights
            the run kept); a pruned one's last validation; None without validation.
        validations: validations the trial reported.
        seconds: wall time of the trial (None while it runs).
        note: why it was pruned, failed or interrupted.
    """

    number: int
    state: str
    values: dict[str, Any]
    metric: float | None
    validations: int
    seconds: float | None
    note: str

    def document(self) -> dict[str, Any]:
        return self._asdict()


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return toml_value(value)


def markdown_table(space: SearchSpace, records: Sequence[TrialRecord], *, best: int | None) -> str:
    """One row per trial: its state, values, metric, validations, seconds and note."""
    head = ["trial", "state", *space.keys, space.metric, "validations", "seconds", "note"]
    align = ["---:", "---", *("---:" for _ in space.keys), "---:", "---:", "---:", "---"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in records:
        state = f"{r.state} (best)" if r.number == best else r.state
        cells = [
            str(r.number),
            state,
            *(_number(r.values[k]) if k in r.values else "" for k in space.keys),
            "" if r.metric is None else f"{r.metric:.4f}",
            str(r.validations),
            "" if r.seconds is None else f"{r.seconds:.1f}",
            markdown_cell(r.note),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_line(space: SearchSpace, records: Sequence[TrialRecord], best: int | None) -> str:
    """``hr@100 on the validation users, maximised · 4 trials: 2 complete, ... · best: ...``."""
    counts = Counter(r.state for r in records)
    states = ", ".join(f"{n} {state}" for state, n in counts.items())
    line = f"{space.metric} on the validation users, maximised · {len(records)} trials"
    if states:
        line += f": {states}"
    by_number = {r.number: r for r in records}
    if best is not None and by_number[best].metric is not None:
        line += f" · best: trial {best}, {space.metric} = {by_number[best].metric:.4f}"
    return line


def write_results(
    out_dir: Path,
    space: SearchSpace,
    base: Config,
    records: Sequence[TrialRecord],
    best: int | None,
) -> str:
    """Writes ``results.md``, ``results.json`` and (with a best trial) ``best.toml``.

    Returns the Markdown table.
    """
    table = markdown_table(space, records, best=best)
    title = "# multiembed tune\n\n" + summary_line(space, records, best) + "\n\n"
    (out_dir / RESULTS_MD).write_text(title + table + "\n", encoding="utf-8")
    document = {
        "metric": space.metric,
        "direction": "maximize",
        "space": space.document()["space"],
        "best_trial": best,
        "trials": [r.document() for r in records],
    }
    (out_dir / RESULTS_JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if best is not None:
        winner = next(r for r in records if r.number == best)
        chosen = ", ".join(f"{k} = {toml_value(v)}" for k, v in winner.values.items())
        comment = (
            f"The best trial ({best}) of multiembed tune: {space.metric} = {winner.metric:.4f} "
            f"on the validation users.\nIts values: {chosen}; run directory trials/{best:03d}."
        )
        text = to_toml(configured(base, winner.values), comment=comment)
        (out_dir / BEST_TOML).write_text(text, encoding="utf-8")
    return table
