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
from typing import NamedTuple, Protocol

import numpy as np

from multiembed.errors import ConfigError
from multiembed.index import ItemTopics, Ranked, TopicHits, VectorIndex
from multiembed.retrieve._budgets import equal_budgets, implicit_budgets
from multiembed.retrieve._checks import describe
from multiembed.retrieve._merge import Candidates, Merger, round_robin_merge
from multiembed.retrieve._topics import relevance_filter
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
    (Section 3.3.3). ``Retrieval.stages_ms`` times budgets, both searches, the
    filter and the merge.

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

    if implicit is not None and im_slots.size:
        hits = index.search(implicit.embeddings[im_slots], int(im_depth.max()), depths=im_depth)
        for i, slot in enumerate(im_slots):
            row = hits.row(i)
            d = int(im_depth[i])
            lists.append(Ranked(row.ids[:d], row.scores[:d]))
            sources.append(Source(IMPLICIT, int(slot)))
            budgets.append(int(im_b[slot]))
            filtered.append(0)
    clock.lap("search_implicit")

    if explicit is not None and topic_index is not None and ex_rows.size:
        topics = explicit.topics[ex_rows]
        res = topic_index.search(explicit.embeddings[ex_rows], topics, int(ex_depth.max()))
        clock.lap("search_explicit")
        for i, row_index in enumerate(ex_rows):
            row = res.hits.row(i)
            d = int(ex_depth[i])
            ids, scores = row.ids[:d], row.scores[:d]
            keep = relevance_filter(ids, int(topics[i]), topic_index.item_topics)
            lists.append(Ranked(ids[keep], scores[keep]))
            sources.append(Source(EXPLICIT, int(topics[i])))
            budgets.append(int(ex_b[row_index]))
            filtered.append(int(res.filtered[i]) + int((~keep).sum()))
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
