"""The per-request multi-embedding retrieval plan (Section 3.5), as pure functions.

- `implicit_budgets`: budgets proportional to cluster importance, with a floor,
  summing exactly to the implicit total; `equal_budgets` for explicit topics.
- `sample_topics`: K_ex followed topics, reproducible per (seed, user).
- `relevance_filter`: keep an explicit candidate only if it carries the topic
  (Section 3.3.3); `relevance_filter_rows` for all explicit lists at once.
- `round_robin_merge` (with dedup, first position kept, every source recorded,
  budgets redistributed when a list runs dry) and `global_topk_merge`
  (Section 4.4), both returning `Candidates` with provenance.
- `plan_budgets`: one request's lists and budgets in round-robin order.
- `fill_budget`: merge, then search the lists the merge ran dry deeper and merge
  again, so the request gets ``min(total, distinct reachable items)``;
  `fill_from_hits` runs it over lists searched once (offline evaluation).
- `plan_from_lists`: the same plan over lists searched beforehand (`ImplicitLists`,
  `ExplicitLists`), as the offline evaluation serves many users from one scan.
- `implicit_queries`: one user's implicit queries from the user tower's output,
  non-finite slots masked out.
- `explicit_standin`: explicit queries without a conditional model (the user's
  importance-weighted implicit `taste`, or the topic's centroid from
  `topic_centroids`), shared by the service and the offline evaluation.
- `plan_request`: budgets, batched searches, filter and merge for one request,
  with the explicit-only, implicit-only and popularity fallbacks; the relevance
  filter can be switched off (`PlanSettings.relevance_filter`). A topic
  searcher that sends huge topics to the plan's own item index
  (`SharedAnnSearcher`, e.g. `multiembed.index.TopicIndex`) has their first
  search batched with the implicit rows: one FAISS call for every graph query.

Shapes: ``K`` implicit slots (K_im), ``T`` topics, ``D`` dim, ``L`` lists,
``N`` candidates, ``M`` (candidate, list) occurrences.
"""

from multiembed.retrieve._budgets import ListBudgets, equal_budgets, implicit_budgets, plan_budgets
from multiembed.retrieve._fill import (
    Filled,
    ListSearch,
    Searched,
    deepest,
    expected_yields,
    fill_budget,
    fill_from_hits,
    first_depths,
)
from multiembed.retrieve._lists import ExplicitLists, ImplicitLists, plan_from_lists
from multiembed.retrieve._merge import (
    Candidates,
    Merger,
    Occurrence,
    global_topk_merge,
    global_topk_merger,
    round_robin_merge,
)
from multiembed.retrieve._plan import (
    EXPLICIT,
    IMPLICIT,
    POPULAR,
    Candidate,
    Provenance,
    Retrieval,
    Source,
    plan_request,
    popular_retrieval,
)
from multiembed.retrieve._queries import (
    ExplicitQueries,
    ImplicitQueries,
    explicit_standin,
    finite_queries,
    implicit_queries,
    taste,
    topic_centroids,
)
from multiembed.retrieve._search import SharedAnnSearcher, TopicSearcher
from multiembed.retrieve._settings import PlanSettings
from multiembed.retrieve._topics import relevance_filter, relevance_filter_rows, sample_topics
from multiembed.retrieve.errors import RetrievalInputError

__all__ = [
    "EXPLICIT",
    "IMPLICIT",
    "POPULAR",
    "Candidate",
    "Candidates",
    "ExplicitLists",
    "ExplicitQueries",
    "Filled",
    "ImplicitLists",
    "ImplicitQueries",
    "ListBudgets",
    "ListSearch",
    "Merger",
    "Occurrence",
    "PlanSettings",
    "Provenance",
    "Retrieval",
    "RetrievalInputError",
    "Searched",
    "SharedAnnSearcher",
    "Source",
    "TopicSearcher",
    "deepest",
    "equal_budgets",
    "expected_yields",
    "explicit_standin",
    "fill_budget",
    "fill_from_hits",
    "finite_queries",
    "first_depths",
    "global_topk_merge",
    "global_topk_merger",
    "implicit_budgets",
    "implicit_queries",
    "plan_budgets",
    "plan_from_lists",
    "plan_request",
    "popular_retrieval",
    "relevance_filter",
    "relevance_filter_rows",
    "round_robin_merge",
    "sample_topics",
    "taste",
    "topic_centroids",
]
