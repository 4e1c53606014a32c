"""Table 5 of the paper, online and simulated: the whole framework against a single embedding.

Trains (or reuses) three runs on the data: the single-embedding two-tower
retriever (the control), DCM (implicit interests) and Conditional Retrieval with
source interest (explicit interests). The treatment arm serves DCM and CR
together through the serving plan (implicit budgets by importance, K_ex
followed topics with the relevance filter, round-robin merge); the control
serves the single embedding alone. `multiembed.simulate.run_simulation` then
runs both arms over every user of the synthetic world with the same sessions
and coins, and writes ``out_dir/report.md`` with the lifts in saves (HF Repins)
and adopted topics (A-Pincepts) and their bootstrap intervals, and each run's
offline metrics beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from multiembed.experiments._online import CR_SOURCE, OnlineTable, implicit, run_table

TITLE = "Table 5 (simulated online): DCM + CR against the single-embedding retriever"


def arms(run_dir: Mapping[str, str]) -> dict[str, list[str]]:
    """The control (the single embedding) and the framework (DCM + CR)."""
    return {"single": [run_dir["single"]], "framework": [run_dir["dcm"], run_dir["cr_source"]]}


TABLE = OnlineTable(
    title=TITLE,
    runs={"single": implicit("single"), "dcm": implicit("dcm"), "cr_source": CR_SOURCE},
    arms=arms,
    offline={"framework": ("dcm", "hr@100")},
)


run = partial(run_table, TABLE)
