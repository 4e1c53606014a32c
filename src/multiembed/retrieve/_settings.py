"""Request-level settings of the retrieval plan."""

from __future__ import annotations

from dataclasses import dataclass

from multiembed.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    """Request-level retrieval settings, validated at construction.

    Attributes:
        total: candidates per request (the paper: O(1k)). The plan returns exactly
            ``min(total, distinct items its lists can reach)``.
        k_ex: most explicit topics per request (the paper: 5).
        floor: least budget of a used implicit slot (see `implicit_budgets`).
        implicit_share: share of `total` for implicit lists when the user has both
            kinds; None: in proportion to the number of lists of each kind.
        overfetch: each list is first searched ``ceil(overfetch * budget)`` deeper
            than its budget when there are several lists, so that duplicates and
            filtered items are replaced without a second search. A list the merge
            still runs dry is searched again (`fill_budget`), a second round of
            searches after the first: of 300 multi-embedding requests of the latency
            benchmark (200k items, HNSW), 260 needed one at 0.2, 99 at 0.5, 35 at 1.0
            (budget that small followed topics leave is searched for at once).
        relevance_filter: explicit (topic-conditioned) embeddings search inside their
            topic and keep only items carrying it (Section 3.3.3, "CR w/ filter");
            False: they search the whole item index, like an implicit embedding
            ("CR w/o filter", Table 3).

    >>> PlanSettings(total=100, relevance_filter=False).relevance_filter
    False
    """

    total: int = 1000
    k_ex: int = 5
    floor: int = 10
    implicit_share: float | None = None
    overfetch: float = 1.0
    relevance_filter: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name, low in (("total", 1), ("k_ex", 0), ("floor", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"plan.{name} = {value!r}: must be an int >= {low}")
        share = self.implicit_share
        if share is not None and not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
            problems.append(f"plan.implicit_share = {share!r}: must be None or in [0, 1]")
        if not (isinstance(self.overfetch, int | float) and 0.0 <= self.overfetch <= 10.0):
            problems.append(f"plan.overfetch = {self.overfetch!r}: must be in [0, 10]")
        if not isinstance(self.relevance_filter, bool):
            problems.append(f"plan.relevance_filter = {self.relevance_filter!r}: must be a bool")
        if problems:
            raise ConfigError(problems)
