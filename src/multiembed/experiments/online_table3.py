"""Table 3 of the paper, online and simulated: Conditional Retrieval added to production.

The control serves the legacy inverted-index topic retriever alone (the world's
logging policy's topic source, `multiembed.simulate.LegacyTopicSource`). Each
treatment adds a CR variant beside it, as the paper added CR to production:

- ``cr_filter``: CR with source interest and the relevance filter (Section 3.3.3);
- ``cr_nofilter``: the same run without the filter (its lists search every item);
- ``cr_item``: CR trained on item interest (a topic of the engaged item, Lin et
  al.) instead of the source interest logged with the engagement.

Every explicit list (one per sampled followed topic and source) gets the same
budget, so a treatment gives half of the explicit budget to CR. The report gives
saves per user (HF Repins) and adopted topics (A-Pincepts), overall, non-core
and core, with bootstrap intervals, and the runs' offline metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from multiembed.experiments._online import CR_ITEM, CR_SOURCE, OnlineTable, run_table

TITLE = "Table 3 (simulated online): Conditional Retrieval added to the legacy topic retriever"


def arms(run_dir: Mapping[str, str]) -> dict[str, list[str]]:
    """The legacy retriever alone, then legacy + each CR variant."""
    return {
        "legacy": ["legacy"],
        "cr_filter": ["legacy", run_dir["cr_source"]],
        "cr_nofilter": ["legacy", run_dir["cr_source"], "nofilter"],
        "cr_item": ["legacy", run_dir["cr_item"]],
    }


TABLE = OnlineTable(
    title=TITLE,
    runs={"cr_source": CR_SOURCE, "cr_item": CR_ITEM},
    arms=arms,
    offline={
        "cr_filter": ("cr_source", "filtered_hr@100"),
        "cr_nofilter": ("cr_source", "explicit_hr@100"),
        "cr_item": ("cr_item", "filtered_hr@100"),
    },
)


run = partial(run_table, TABLE)
