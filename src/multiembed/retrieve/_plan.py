"""The per-request retrieval plan (Section 3.5): budgets, searches, filter, merge.

    implicit: K_im embeddings [K_im, D], importance [K_im], slot mask [K_im]
        └─ implicit_budgets ─▶ one batched index.search ─▶ K_im ranked lists
    explicit: K_ex sampled topics [K_ex], embeddings [K_ex, D]
        └─ equal_budgets ─▶ one batched topic search ─▶ relevance filter ─▶ K_ex lists
    merge (round-robin with dedup by default) ─▶ candidates with provenance

A user with no usable history (no used implicit slot) gets explicit lists only;
with no followed topics, implicit only; with neither, the top of a precomputed
popularity list, marked ``popular``. Each list is searched a little deeper than
its budget (`PlanSettings.overfetch`), so that duplicates and filtered items
can be replaced by the merge's redistribution.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from multiembed.errors import ConfigError
from multiembed.index import Hits, ItemTopics, Ranked, TopicHits, VectorIndex
from multiembed.retrieve._budgets import equal_budgets, implicit_budgets
from multiembed.retrieve._checks import describe
from multiembed.retrieve._merge import Candidates, Merger, round_robin_merge
from multiembed.retrieve._topics import relevance_filter_rows
from multiembed.retrieve.errors import RetrievalInputError

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


class ImplicitQueries(NamedTuple):
    """The user tower's implicit interests for one user.

    Attributes:
        embeddings: ``[K_im, D]`` float user embeddings.
        importance: ``[K_im]`` cluster importance ``sum_i b_ij`` (0 for unused slots).
        slot_mask: ``[K_im]`` bool, False for an unused slot.
    """

    embeddings: np.ndarray
    importance: np.ndarray
    slot_mask: np.ndarray


class ExplicitQueries(NamedTuple):
    """Topic-conditioned embeddings for the sampled followed topics.

    Attributes:
        topics: ``[K_ex]`` int topics (from `sample_topics`).
        embeddings: ``[K_ex, D]`` float, row ``i`` conditioned on ``topics[i]``.
    """

    topics: np.ndarray
    embeddings: np.ndarray


class TopicSearcher(Protocol):
    """What the plan needs for explicit lists (`multiembed.index.TopicIndex`)."""

    @property
    def item_topics(self) -> ItemTopics: ...

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> TopicHits: ...


@runtime_checkable
class SharedAnnSearcher(Protocol):
    """A `TopicSearcher` that sends some topics to an item index, ``ann``, and lets the
    caller run their first search there (`multiembed.index.TopicIndex`).

    When ``ann`` is the plan's own index, the plan adds those rows (`ann_rows`, at
    depth `ann_depth`) to its implicit search: one FAISS call for every graph
    query of the request, whose rows its threads share; the searcher then starts
    from ``ann_hits``.
    """

    ann: VectorIndex | None

    @property
    def item_topics(self) -> ItemTopics: ...

    def ann_rows(self, topics: np.ndarray) -> np.ndarray: ...

    def ann_depth(self, k: int) -> int: ...

    def search(
        self, queries: np.ndarray, topics: np.ndarray, k: int, *, ann_hits: Hits | None = None
    ) -> TopicHits: ...


@dataclass(frozen=True, kw_only=True)
class PlanSettings:
    """Request-level retrieval settings, validated at construction.

    Attributes:
        total: candidates per request (the paper: O(1k)).
        k_ex: most explicit topics per request (the paper: 5).
        floor: least budget of a used implicit slot (see `implicit_budgets`).
        implicit_share: share of `total` for implicit lists when the user has both
            kinds; None: in proportion to the number of lists of each kind.
        overfetch: each list is searched ``ceil(overfetch * budget)`` deeper than
            its budget when there are several lists (duplicates, filtered items).
    """

    total: int = 1000
    k_ex: int = 5
    floor: int = 10
    implicit_share: float | None = None
    overfetch: float = 0.2

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
        if problems:
            raise ConfigError(problems)


@dataclass(frozen=True)
class Retrieval:
    """The outcome of one request's plan.

    Attributes:
        candidates: merged `Candidates` ``[N]``; ``candidates.source`` indexes `sources`.
        sources: ``[L]`` the label of each list.
        budgets: ``[L]`` int64 budget of each list.
        found: ``[L]`` int64 hits each list brought to the merge (after filtering).
        filtered: ``[L]`` int64 hits dropped as off-topic (explicit lists; 0 otherwise).
        stages_ms: wall time of each stage in milliseconds.
    """

    candidates: Candidates
    sources: tuple[Source, ...]
    budgets: np.ndarray
    found: np.ndarray
    filtered: np.ndarray
    stages_ms: dict[str, float]

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


def _check_implicit(q: ImplicitQueries, dim: int) -> None:
    emb, imp, mask = q
    k = emb.shape[0] if isinstance(emb, np.ndarray) and emb.ndim == 2 else -1
    if k < 0 or emb.shape[1] != dim:
        raise RetrievalInputError(
            "plan_request", "implicit.embeddings", f"a [K_im, {dim}] array", describe(emb)
        )
    if not isinstance(imp, np.ndarray) or imp.shape != (k,):
        raise RetrievalInputError(
            "plan_request", "implicit.importance", f"a [{k}] array", describe(imp)
        )
    if not isinstance(mask, np.ndarray) or mask.shape != (k,) or mask.dtype != bool:
        raise RetrievalInputError(
            "plan_request", "implicit.slot_mask", f"a [{k}] bool array", describe(mask)
        )


def _check_explicit(q: ExplicitQueries, dim: int, k_ex: int) -> None:
    topics, emb = q
    if not isinstance(topics, np.ndarray) or topics.ndim != 1 or topics.size > k_ex:
        raise RetrievalInputError(
            "plan_request", "explicit.topics", f"a [T <= {k_ex}] int array", describe(topics)
        )
    if not isinstance(emb, np.ndarray) or emb.shape != (topics.size, dim):
        raise RetrievalInputError(
            "plan_request", "explicit.embeddings", f"a [{topics.size}, {dim}] array", describe(emb)
        )


def _sharer(topic_index: TopicSearcher | None, index: VectorIndex) -> SharedAnnSearcher | None:
    """`topic_index`, when it searches some topics in `index` and lets the plan batch them."""
    if getattr(topic_index, "ann", None) is index and isinstance(topic_index, SharedAnnSearcher):
        return topic_index
    return None


def _cut(hits: Hits, depths: np.ndarray) -> list[Ranked]:
    """Row ``q`` of `hits` ``[Q, k]`` cut to its first ``depths[q]`` hits, padding removed.

    >>> h = Hits(np.array([[4, 5, 6], [7, -1, -1]]), np.array([[3.0, 2, 1], [5, -np.inf, -np.inf]]))
    >>> [r.ids.tolist() for r in _cut(h, np.array([2, 3]))]
    [[4, 5], [7]]
    """
    out = []
    for q, d in enumerate(depths.tolist()):
        ids, scores = hits.ids[q, :d], hits.scores[q, :d]
        if d and ids[-1] < 0:  # -1 padding sits at the end of a row: keep what is before
            n = int(np.count_nonzero(ids >= 0))
            ids, scores = ids[:n], scores[:n]
        out.append(Ranked(ids, scores))
    return out


def _filtered(
    res: TopicHits, topics: np.ndarray, depths: np.ndarray, item_topics: ItemTopics
) -> tuple[list[Ranked], list[int]]:
    """The explicit lists: row ``t`` cut to ``depths[t]``, then the relevance filter for
    ``topics[t]``; and the hits each list lost (in the search and in the filter)."""
    cut = _cut(res.hits, depths)
    width = max(r.ids.size for r in cut)
    keep = relevance_filter_rows(res.hits.ids[:, :width], topics, item_topics)  # [T, width]
    lists, dropped = [], []
    for t, row in enumerate(cut):
        kept = keep[t, : row.ids.size]
        lists.append(Ranked(row.ids[kept], row.scores[kept]))
        dropped.append(int(res.filtered[t]) + row.ids.size - int(np.count_nonzero(kept)))
    return lists, dropped


def _depths(budgets: np.ndarray, overfetch: float, lists: int) -> np.ndarray:
    if lists <= 1:
        return budgets.copy()
    return budgets + np.ceil(overfetch * budgets).astype(np.int64)


class _Clock:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + (now - self._t) * 1e3
        self._t = now


def plan_request(
    *,
    index: VectorIndex,
    popular: Ranked,
    settings: PlanSettings,
    implicit: ImplicitQueries | None = None,
    explicit: ExplicitQueries | None = None,
    topic_index: TopicSearcher | None = None,
    merge: Merger = round_robin_merge,
) -> Retrieval:
    """Run one request's retrieval plan and return candidates with provenance.

    Budgets: with both kinds present, ``settings.total`` is split between
    implicit and explicit lists (`PlanSettings.implicit_share`); implicit budgets
    follow cluster importance (`implicit_budgets`), explicit ones are equal
    (`equal_budgets`). Implicit lists come first, most important first, then
    explicit lists in sampled order: that is the round-robin order.

    Searches: all implicit embeddings in one ``index.search`` call (with each
    row's own depth as a hint, ``depths=``), all explicit embeddings in one
    ``topic_index.search`` call; each list is cut to its depth (budget plus
    `PlanSettings.overfetch`), and explicit hits pass the relevance filter
    (Section 3.3.3). When the topic searcher sends huge topics to this same
    `index` (a `SharedAnnSearcher`, e.g. a `TopicIndex` built with
    ``ann=index``), the first search of those explicit rows joins the implicit
    call, so that one FAISS call (and its threads) serves every graph query of
    the request; the result is the same. ``Retrieval.stages_ms`` times budgets,
    both searches (``search_implicit`` includes the shared rows), the filter and
    the merge.

    Args:
        index: the item index for implicit embeddings.
        popular: the popularity list (`Ranked`, most popular first) used when the
            user has neither history nor followed topics.
        settings: `PlanSettings`.
        implicit: the user tower's `ImplicitQueries`, or None (no history).
        explicit: `ExplicitQueries` for the sampled topics, or None (no topics).
        topic_index: topic-restricted search; required when `explicit` has topics.
        merge: the merge strategy (`round_robin_merge`, or `global_topk_merger`).

    Returns:
        `Retrieval`; never a ``-1`` id or a non-finite score.
    """
    clock = _Clock()
    if implicit is not None:
        _check_implicit(implicit, index.dim)
    if explicit is not None:
        _check_explicit(explicit, index.dim, settings.k_ex)
        if explicit.topics.size and topic_index is None:
            raise RetrievalInputError(
                "plan_request", "topic_index", "a TopicSearcher for explicit queries", "None"
            )
    used = (
        np.zeros(0, bool)
        if implicit is None
        else implicit.slot_mask & (np.asarray(implicit.importance, np.float64) > 0)
    )
    n_im = int(used.sum())
    n_ex = 0 if explicit is None else int(explicit.topics.size)
    if n_im == 0 and n_ex == 0:
        return _popular(popular, settings.total, clock)

    if n_im and n_ex:
        share = n_im / (n_im + n_ex) if settings.implicit_share is None else settings.implicit_share
        im_total = min(settings.total, round(settings.total * share))
    else:
        im_total = settings.total if n_im else 0
    sources: list[Source] = []
    lists: list[Ranked] = []
    budgets: list[int] = []
    filtered: list[int] = []
    im_b = np.zeros(0, np.int64)
    ex_b = np.zeros(0, np.int64)
    if implicit is not None and n_im:
        im_b = implicit_budgets(
            implicit.importance, im_total, floor=settings.floor, mask=implicit.slot_mask
        )
    if explicit is not None and n_ex:
        ex_b = equal_budgets(n_ex, settings.total - im_total)
    im_slots = np.flatnonzero(im_b > 0)
    if implicit is not None:  # most important first; stable on slot index
        im_slots = im_slots[np.argsort(-implicit.importance[im_slots], kind="stable")]
    ex_rows = np.flatnonzero(ex_b > 0)
    n_lists = im_slots.size + ex_rows.size
    im_depth = _depths(im_b[im_slots], settings.overfetch, n_lists)
    ex_depth = _depths(ex_b[ex_rows], settings.overfetch, n_lists)
    clock.lap("budgets")

    im_queries = np.zeros((0, index.dim), np.float32)
    if implicit is not None:
        im_queries = implicit.embeddings[im_slots]
    ex_queries, topics = np.zeros((0, index.dim), np.float32), np.zeros(0, np.int64)
    if explicit is not None:
        ex_queries, topics = explicit.embeddings[ex_rows], explicit.topics[ex_rows]
    ex_k = int(ex_depth.max()) if ex_rows.size else 0
    # explicit rows whose first search is in `index` too join the implicit rows' call
    sharer = _sharer(topic_index, index) if ex_rows.size else None
    shared = np.zeros(0, np.int64)
    if sharer is not None:
        shared = np.flatnonzero(sharer.ann_rows(topics))
    queries, depths = im_queries, im_depth
    if sharer is not None and shared.size:
        queries = np.concatenate([im_queries, ex_queries[shared]])
        depths = np.concatenate([im_depth, np.full(shared.size, sharer.ann_depth(ex_k))])
    ann_hits = None
    if depths.size:
        hits = index.search(queries, int(depths.max()), depths=depths)
        lists.extend(_cut(hits, im_depth))
        sources.extend(Source(IMPLICIT, slot) for slot in im_slots.tolist())
        budgets.extend(im_b[im_slots].tolist())
        filtered.extend([0] * im_slots.size)
        if shared.size:
            ann_hits = Hits(hits.ids[im_slots.size :], hits.scores[im_slots.size :])
    clock.lap("search_implicit")

    if topic_index is not None and ex_rows.size:
        if sharer is not None and ann_hits is not None:
            res = sharer.search(ex_queries, topics, ex_k, ann_hits=ann_hits)
        else:
            res = topic_index.search(ex_queries, topics, ex_k)
        clock.lap("search_explicit")
        ex_lists, ex_filtered = _filtered(res, topics, ex_depth, topic_index.item_topics)
        lists.extend(ex_lists)
        filtered.extend(ex_filtered)
        sources.extend(Source(EXPLICIT, t) for t in topics.tolist())
        budgets.extend(ex_b[ex_rows].tolist())
        clock.lap("filter")

    candidates = merge(lists, np.array(budgets, dtype=np.int64), settings.total)
    clock.lap("merge")
    return Retrieval(
        candidates=candidates,
        sources=tuple(sources),
        budgets=np.array(budgets, dtype=np.int64),
        found=np.array([r.ids.size for r in lists], dtype=np.int64),
        filtered=np.array(filtered, dtype=np.int64),
        stages_ms=clock.stages,
    )


def _popular(popular: Ranked, total: int, clock: _Clock) -> Retrieval:
    lists: Sequence[Ranked] = [popular]
    candidates = round_robin_merge(lists, np.array([total]), total)
    clock.lap("merge")
    return Retrieval(
        candidates=candidates,
        sources=(Source(POPULAR, -1),),
        budgets=np.array([total], dtype=np.int64),
        found=np.array([popular.ids.size], dtype=np.int64),
        filtered=np.zeros(1, dtype=np.int64),
        stages_ms=clock.stages,
    )
