"""The per-request retrieval plan (Section 3.5): budgets, searches, filter, merge.

    implicit: K_im embeddings [K_im, D], importance [K_im], slot mask [K_im]
        └─ implicit_budgets ─▶ one batched index.search ─▶ K_im ranked lists
    explicit: K_ex sampled topics [K_ex], embeddings [K_ex, D]
        └─ equal_budgets ─▶ one batched topic search ─▶ relevance filter ─▶ K_ex lists
           (relevance_filter off: searched in the whole item index, like implicit rows)
    merge (round-robin with dedup by default) ─▶ candidates with provenance
        └─ a list the merge runs dry is searched deeper and merged again (fill_budget)

A user with no usable history (no used implicit slot) gets explicit lists only;
with no followed topics, implicit only; with neither, the top of a precomputed
popularity list, marked ``popular``. Each list is first searched a little deeper
than its budget (`PlanSettings.overfetch`), so that most duplicates and filtered
items are replaced without a second search; lists still short are searched
deeper, so the request gets ``min(total, distinct items reachable)`` candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from multiembed.index import Ranked, VectorIndex
from multiembed.retrieve._budgets import ListBudgets, plan_budgets
from multiembed.retrieve._fill import Filled, fill_budget, first_depths
from multiembed.retrieve._merge import Candidates, Merger, round_robin_merge
from multiembed.retrieve._queries import (
    ExplicitQueries,
    ImplicitQueries,
    check_explicit,
    check_implicit,
)
from multiembed.retrieve._search import Clock, RequestSearch, TopicSearcher
from multiembed.retrieve._settings import PlanSettings
from multiembed.retrieve.errors import RetrievalInputError

if TYPE_CHECKING:
    from multiembed.retrieve._lists import ExplicitLists, ImplicitLists

IMPLICIT = "implicit"
EXPLICIT = "explicit"
POPULAR = "popular"


class Source(NamedTuple):
    """Which embedding a list came from: implicit slot ``j``, explicit topic ``t``, or popular.

    >>> str(Source(IMPLICIT, 3)), str(Source(EXPLICIT, 17)), str(Source(POPULAR, -1))
    ('implicit:3', 'explicit:17', 'popular')
    """

    kind: str
    key: int

    def __str__(self) -> str:
        return self.kind if self.kind == POPULAR else f"{self.kind}:{self.key}"


class Provenance(NamedTuple):
    """One source that found a candidate, with the candidate's 0-based rank and score there."""

    source: Source
    rank: int
    score: float


class Candidate(NamedTuple):
    """One merged candidate: placed by `source` at `rank` with `score`; `found_by` lists all."""

    item_id: int
    score: float
    source: Source
    rank: int
    found_by: tuple[Provenance, ...]


@dataclass(frozen=True)
class Retrieval:
    """The outcome of one request's plan.

    Attributes:
        candidates: merged `Candidates` ``[N]``; ``candidates.source`` indexes `sources`.
        sources: ``[L]`` the label of each list.
        budgets: ``[L]`` int64 budget of each list.
        found: ``[L]`` int64 hits each list brought to the merge (after filtering).
        filtered: ``[L]`` int64 hits dropped as off-topic (explicit lists; 0 otherwise).
        stages_ms: wall time of each stage in milliseconds (``refill``: the deeper
            searches of lists the merge ran dry, when there were any).
        depths: ``[L]`` int64 depth each list was last searched to.
        lists: ``[L]`` every list at that depth (`Ranked`, after the filter).
    """

    candidates: Candidates
    sources: tuple[Source, ...]
    budgets: np.ndarray
    found: np.ndarray
    filtered: np.ndarray
    stages_ms: dict[str, float]
    depths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lists: tuple[Ranked, ...] = ()

    def __len__(self) -> int:
        return len(self.candidates)

    def records(self) -> list[Candidate]:
        """The candidates as `Candidate` records with full provenance (for display, JSON)."""
        c = self.candidates
        return [
            Candidate(
                int(c.ids[n]),
                float(c.scores[n]),
                self.sources[int(c.source[n])],
                int(c.rank[n]),
                tuple(Provenance(self.sources[o.source], o.rank, o.score) for o in c.found_by(n)),
            )
            for n in range(len(c))
        ]


def plan_request(
    *,
    index: VectorIndex,
    popular: Ranked,
    settings: PlanSettings,
    implicit: ImplicitQueries | None = None,
    explicit: ExplicitQueries | None = None,
    topic_index: TopicSearcher | None = None,
    explicit_index: VectorIndex | None = None,
    merge: Merger = round_robin_merge,
) -> Retrieval:
    """Run one request's retrieval plan and return candidates with provenance.

    Budgets (`plan_budgets`): with both kinds present, ``settings.total`` is split
    between implicit and explicit lists (`PlanSettings.implicit_share`); implicit
    budgets follow cluster importance (`implicit_budgets`), explicit ones are
    equal (`equal_budgets`). Implicit lists come first, most important first, then
    explicit lists in sampled order: that is the round-robin order.

    Searches (`RequestSearch`): all implicit embeddings in one ``index.search`` call
    (with each row's own depth as a hint, ``depths=``), all explicit embeddings in
    one ``topic_index.search`` call, each list cut to its first depth (budget plus
    `PlanSettings.overfetch`, plus its share of the budget that topics smaller than
    theirs leave: `first_depths` with `RequestSearch.reach`), explicit hits through
    the relevance filter (Section 3.3.3). With ``settings.relevance_filter`` off,
    explicit embeddings search `explicit_index` (default `index`) like implicit ones,
    unfiltered. A topic searcher that sends huge topics to this same `index` (a
    `SharedAnnSearcher`) has their first search joined to the implicit call: one
    FAISS call for every graph query of the request, with the same result.

    Merge and refill (`fill_budget`): the lists are merged; a list the merge ran
    dry while its source holds more is searched deeper (as deep as the merge says
    it needs) and the lists are merged again, until none is. A round-robin merge so returns exactly
    ``min(settings.total, distinct items the lists can reach)`` candidates.
    ``Retrieval.stages_ms`` times budgets, both searches (``search_implicit``
    includes the shared rows), the filter, the refills and the merge.

    Args:
        index: the item index for implicit embeddings.
        popular: the popularity list (`Ranked`, most popular first) used when the
            user has neither history nor followed topics.
        settings: `PlanSettings`.
        implicit: the user tower's `ImplicitQueries`, or None (no history).
        explicit: `ExplicitQueries` for the sampled topics, or None (no topics).
        topic_index: topic-restricted search; required when `explicit` has topics and
            the relevance filter is on.
        explicit_index: the item index explicit embeddings search when the relevance
            filter is off (their item tower's vectors); None: `index`.
        merge: the merge strategy (`round_robin_merge`, or `global_topk_merger`).

    Returns:
        `Retrieval`; never a ``-1`` id or a non-finite score.
    """
    clock = Clock()
    if implicit is not None:
        check_implicit(implicit, index.dim)
    if explicit is not None:
        dim = index.dim if explicit_index is None else explicit_index.dim
        check_explicit(explicit, dim, settings.k_ex)
        if explicit.topics.size and topic_index is None and settings.relevance_filter:
            raise RetrievalInputError(
                "plan_request", "topic_index", "a TopicSearcher for explicit queries", "None"
            )
    plan = request_budgets(settings, implicit, explicit)
    if plan.lists == 0:
        return popular_retrieval(popular, settings.total, clock)
    clock.lap("budgets")
    empty = np.zeros((0, index.dim), np.float32)
    search = RequestSearch(  # the lists `plan` keeps: the queries of its slots and topic rows
        index=index,
        implicit=empty if implicit is None else implicit.embeddings[plan.slots],
        explicit=empty if explicit is None else explicit.embeddings[plan.rows],
        topics=np.zeros(0, np.int64) if explicit is None else explicit.topics[plan.rows],
        topic_index=topic_index,
        explicit_index=index if explicit_index is None else explicit_index,
        relevance_filter=settings.relevance_filter,
        clock=clock,
    )
    depths = first_depths(plan.budgets, settings.overfetch, reach=search.reach())
    filled = fill_budget(
        search, plan.budgets, settings.total, depths=depths, merge=merge, first=search.first(depths)
    )
    clock.lap("merge")
    return planned_retrieval(plan, search.topics, filled, clock.stages)


def request_budgets(
    settings: PlanSettings,
    implicit: ImplicitQueries | ImplicitLists | None,
    explicit: ExplicitQueries | ExplicitLists | None,
) -> ListBudgets:
    """`plan_budgets` for one request's queries (or lists): its lists in round-robin order."""
    return plan_budgets(
        settings,
        importance=None if implicit is None else implicit.importance,
        slot_mask=None if implicit is None else implicit.slot_mask,
        n_topics=0 if explicit is None else int(explicit.topics.size),
    )


def planned_retrieval(
    plan: ListBudgets, topics: np.ndarray, filled: Filled, stages: dict[str, float]
) -> Retrieval:
    """The `Retrieval` of lists `plan` and their merge `filled`; `topics` ``[L_ex]`` labels
    the explicit lists."""
    sources = [Source(IMPLICIT, slot) for slot in plan.slots.tolist()]
    sources += [Source(EXPLICIT, t) for t in topics.tolist()]
    return Retrieval(
        candidates=filled.candidates,
        sources=tuple(sources),
        budgets=plan.budgets,
        found=np.array([r.ids.size for r in filled.lists], dtype=np.int64),
        filtered=filled.filtered,
        stages_ms=stages,
        depths=filled.depths,
        lists=filled.lists,
    )


def popular_retrieval(popular: Ranked, total: int, clock: Clock | None = None) -> Retrieval:
    """The `Retrieval` of a user with no list: the top `total` of the popularity list."""
    clock = Clock() if clock is None else clock
    candidates = round_robin_merge([popular], np.array([total]), total)
    clock.lap("merge")
    return Retrieval(
        candidates=candidates,
        sources=(Source(POPULAR, -1),),
        budgets=np.array([total], dtype=np.int64),
        found=np.array([popular.ids.size], dtype=np.int64),
        filtered=np.zeros(1, dtype=np.int64),
        stages_ms=clock.stages,
        depths=np.array([popular.ids.size], dtype=np.int64),
        lists=(popular,),
    )
