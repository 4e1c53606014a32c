"""Table 4 of the paper, online and simulated: implicit interest models added to production.

The control is production as Table 3 left it: the legacy topic retriever and
Conditional Retrieval with source interest and the relevance filter. Each
treatment adds one implicit-interest model beside them (self-attention, interest
tokens, MIND, PinnerFormer-style subsequences, DCM), its budgets following
cluster importance. The report gives saves per user (HF Repins) and adopted
topics (A-Pincepts) for all users and core users (and non-core), with bootstrap
intervals, and each run's offline metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Final

from multiembed.experiments._online import CR_SOURCE, OnlineTable, implicit, run_table

TITLE = "Table 4 (simulated online): implicit interest models added to legacy + filtered CR"
MODELS: Final = ("self_attention", "interest_token", "mind", "pfs", "dcm")


def arms(run_dir: Mapping[str, str]) -> dict[str, list[str]]:
    """Legacy + filtered CR, then the same with each implicit model."""
    control = ["legacy", run_dir["cr_source"]]
    return {"legacy_cr": control} | {m: [*control, run_dir[m]] for m in MODELS}


TABLE = OnlineTable(
    title=TITLE,
    runs={"cr_source": CR_SOURCE} | {m: implicit(m) for m in MODELS},
    arms=arms,
    offline={m: (m, "hr@100") for m in MODELS},
)

run = partial(run_table, TABLE)
