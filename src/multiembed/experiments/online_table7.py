"""Table 7 of the paper, online and simulated: the explicit-interest lift per non-core cohort.

The control serves the legacy topic retriever; the treatment adds Conditional
Retrieval with source interest and the relevance filter (Table 3's launched
arm). The report is the simulation's, followed by the lift of the explicit
interests in saves (HF Repins) and adopted topics (A-Pincepts) for each
non-core cohort of the paper's Table 7 (casual, marginal, resurrected, new;
definitions in `multiembed.simulate.cohorts`), with bootstrap intervals.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Final

from multiembed.experiments._online import CR_SOURCE, OnlineTable, run_table
from multiembed.simulate import (
    METRICS,
    SEGMENT_LABELS,
    Comparison,
    fmt_lift,
    markdown_table,
)

TITLE = "Table 7 (simulated online): explicit interests by non-core cohort"
TREATMENT: Final = "explicit"
COHORTS: Final = ("casual", "marginal", "resurrected", "new")


def arms(run_dir: Mapping[str, str]) -> dict[str, list[str]]:
    """The legacy retriever alone, then legacy + filtered CR with source interest."""
    return {"legacy": ["legacy"], TREATMENT: ["legacy", run_dir["cr_source"]]}


def cohort_table(rows: list[Comparison]) -> str:
    """The Markdown section of the explicit arm's lifts by non-core cohort (core users
    first, for contrast)."""
    by = {(r.metric, r.segment): r for r in rows if r.arm == TREATMENT}
    lines = [
        [
            SEGMENT_LABELS[c],
            f"{by['saves', c].users:,}",
            *(fmt_lift(by[m, c]) for m in METRICS),
        ]
        for c in ("core", "non_core", *COHORTS)
    ]
    table = markdown_table(["Cohort", "Users", *METRICS.values()], lines)
    return f"\n## Table 7: the explicit-interest lift by non-core cohort\n\n{table}\n"


TABLE = OnlineTable(
    title=TITLE,
    runs={"cr_source": CR_SOURCE},
    arms=arms,
    offline={TREATMENT: ("cr_source", "filtered_hr@100")},
    section=cohort_table,
)

run = partial(run_table, TABLE)
