"""Writing the benchmark's report: ``benchmark.json`` and a Markdown table of mean ± std."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multiembed.experiments._report import fmt, markdown_table

JSON_FILE = "benchmark.json"
MARKDOWN_FILE = "benchmark.md"
COLUMNS = {
    "recall@20": "Recall@20",
    "recall@50": "Recall@50",
    "hit_rate@50": "HR@50",
    "ndcg@50": "NDCG@50",
    "coverage@50": "coverage@50",
    "interest_cosine": "interest cos",
    "train_seconds": "train s",
}


def table(models: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per model, one column per metric of `COLUMNS` (``mean ± std`` over seeds).

    >>> summary = {"recall@20": {"mean": 0.25, "std": 0.0, "n": 1}, "train_seconds": None}
    >>> print(table({"mostpop": {"summary": summary}}).splitlines()[2])
    | mostpop | 0.2500 | - | - | - | - | - | - |
    """
    rows = [
        [name, *(fmt(model["summary"].get(m), 1 if m == "train_seconds" else 4) for m in COLUMNS)]
        for name, model in models.items()
    ]
    return markdown_table(["model", *COLUMNS.values()], rows)


def markdown(report: Mapping[str, Any], grid: str) -> str:
    """The Markdown report: what was measured, the table and the notes."""
    split = report["split"]
    seeds = ", ".join(str(s) for s in report["seeds"])
    lines = [
        "# Benchmark: ComiRec protocol",
        "",
        f"Data `{report['data_dir']}`: {report['users']:,} test users, {report['items']:,} items. "
        f"Users split {1 - split['valid_share'] - split['test_share']:.2g}:"
        f"{split['valid_share']:.2g}:{split['test_share']:.2g} (seed {split['seed']}); "
        f"a test user's first {split['history_share']:.0%} of events are its history, "
        "the rest its targets.",
        "",
        grid,
        "",
        f"- Trained models: mean ± std over seeds {seeds}; mostpop and ease are deterministic "
        "(one run).",
        "- Every item is ranked (max over the user's embeddings); the items of the user's "
        "history are excluded.",
        "- Recall@N: hits / distinct targets; NDCG@50: ideal DCG over min(|targets|, 50) "
        "positions; coverage@50: share of the targets' topics among the top 50's topics.",
        "- interest cos: mean pairwise cosine of a user's used embeddings (users with at "
        "least two); train s: training seconds (fitting seconds for the baselines).",
        *(f"- {note}" for note in report["notes"]),
    ]
    return "\n".join(lines) + "\n"


def write_outputs(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path, str]:
    """Write ``benchmark.json`` and ``benchmark.md`` into `out_dir`; return them and the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = table(report["models"])
    json_path, md_path = out_dir / JSON_FILE, out_dir / MARKDOWN_FILE
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown(report, grid), encoding="utf-8")
    return json_path, md_path, grid
