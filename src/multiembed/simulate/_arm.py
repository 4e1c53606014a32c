"""An arm of the test: its candidate sources merged by the serving plan.

`serve_day` runs the plan of `multiembed.retrieve` for each of a day's requests
(`plan_from_lists`): `plan_budgets` (implicit budgets by importance with the
floor, explicit budgets equal over the sampled followed topics, the total split
between kinds), then `fill_from_hits` (the plan's first depths, deeper where the
merge runs a list dry) with the arm's merge (round-robin by default). A user
with no usable list gets the popularity list. Items the user was already shown
are taken out of every list before the merge (a feed does not retrieve what it
has shown), so the lists are searched that much deeper. Each candidate keeps
where it came from: the kind of the list that placed it and, for an explicit
list, its topic.

An arm has at most one implicit source (its importances set the implicit
budgets) and any number of explicit ones: each explicit source gives one list per
sampled followed topic, and the plan gives every explicit list the same budget,
so adding a source to production (the paper's Table 3 adds CR beside the legacy
topic retriever) splits the explicit budget between the sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

import numpy as np

from multiembed.errors import ConfigError
from multiembed.index import Ranked
from multiembed.retrieve import (
    ExplicitLists,
    ImplicitLists,
    Merger,
    PlanSettings,
    deepest,
    plan_from_lists,
    round_robin_merge,
)
from multiembed.simulate._sources import (
    EXPLICIT,
    IMPLICIT,
    CandidateSource,
    DayRequest,
    SourceLists,
)

#: Provenance codes of a candidate (`Served.kind`).
KINDS: Final = (IMPLICIT, EXPLICIT, "popular")


@dataclass(frozen=True)
class Arm:
    """One arm: at most one implicit source, any explicit ones, and the plan's settings.

    Attributes:
        name: the arm's label in logs and reports.
        sources: the candidate sources (`CandidateSource`).
        settings: the serving plan's `PlanSettings` (budget, K_ex, relevance filter).
        merge: `round_robin_merge` (the paper's) or `global_topk_merger` (Section 4.4).
    """

    name: str
    sources: tuple[CandidateSource, ...]
    settings: PlanSettings = field(default_factory=lambda: PlanSettings(total=200))
    merge: Merger = round_robin_merge

    def __post_init__(self) -> None:
        kinds = [s.kind for s in self.sources]
        problems = []
        if not self.name or "=" in self.name or "," in self.name:
            problems.append(f"arm name {self.name!r}: must be non-empty, without '=' or ','")
        if not self.sources:
            problems.append(f"arm {self.name!r}: needs at least one candidate source")
        if kinds.count(IMPLICIT) > 1:
            names = ", ".join(s.name for s in self.sources if s.kind == IMPLICIT)
            problems.append(
                f"arm {self.name!r}: at most one {IMPLICIT} source per arm, got {names}"
            )
        if problems:
            raise ConfigError(problems)

    def sources_of(self, kind: str) -> tuple[CandidateSource, ...]:
        """The arm's sources of `kind`, in the arm's order."""
        return tuple(s for s in self.sources if s.kind == kind)


class Served(NamedTuple):
    """One request's merged candidates with provenance.

    Attributes:
        ids: ``[n]`` int64 items in merged order.
        kind: ``[n]`` int64 code into `KINDS` of the list that placed each item.
        topic: ``[n]`` int64 topic of that list (explicit), ``-1`` otherwise.
    """

    ids: np.ndarray
    kind: np.ndarray
    topic: np.ndarray


def serve_day(
    arm: Arm, request: DayRequest, popular: Ranked, seen: Sequence[np.ndarray]
) -> list[Served]:
    """The arm's candidates for every user of `request`, none of them in the user's `seen`.

    Args:
        arm: the arm.
        request: the day's requests; ``request.depth`` must be at least `plan_depth`
            plus the longest `seen`, so that the lists still serve the plan exactly
            once seen items are out.
        popular: the popularity fallback, as deep as ``request.depth``.
        seen: ``B`` sorted arrays of the items each user was shown before.
    """
    settings = arm.settings
    implicit = _lists(arm.sources_of(IMPLICIT), request, seen)
    explicit = _lists(arm.sources_of(EXPLICIT), request, seen)
    out = []
    for row in range(request.users.size):
        keep = ~np.isin(popular.ids, seen[row])
        fallback = Ranked(popular.ids[keep], popular.scores[keep])
        out.append(_serve_one(settings, arm.merge, fallback, implicit, explicit, row))
    return out


def unseen(ids: np.ndarray, scores: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``[S, W]`` lists without the items of `seen`, compacted to the front
    (order kept) and padded with ``-1`` / ``-inf``.

    >>> i, s = unseen(np.array([[3, 1, 2]]), np.array([[3.0, 2.0, 1.0]]), np.array([1]))
    >>> i.tolist(), s.tolist()
    ([[3, 2, -1]], [[3.0, 1.0, -inf]])
    """
    keep = (ids >= 0) & ~np.isin(ids, seen)
    col = np.cumsum(keep, axis=1) - 1
    out_ids = np.full_like(ids, -1)
    out_scores = np.full_like(scores, -np.inf)
    r, c = np.nonzero(keep)
    out_ids[r, col[r, c]] = ids[r, c]
    out_scores[r, col[r, c]] = scores[r, c]
    return out_ids, out_scores


def plan_depth(arms: Sequence[Arm]) -> int:
    """The list depth that serves every arm's plan exactly."""
    return max(deepest(a.settings.total, a.settings.overfetch) for a in arms)


def stack_lists(parts: Sequence[SourceLists]) -> SourceLists:
    """Several sources' lists of the same users as one: ``[B, S1 + S2 + ..., W]``,
    the shallower padded to the deepest ``W``.

    >>> from multiembed.simulate._sources import empty_lists
    >>> stack_lists([empty_lists(2, 3, 4), empty_lists(2, 1, 6)]).ids.shape
    (2, 4, 6)
    """
    w = max(p.ids.shape[2] for p in parts)

    def deepen(a: np.ndarray, pad: float) -> np.ndarray:
        return np.pad(a, ((0, 0), (0, 0), (0, w - a.shape[2])), constant_values=pad)

    return SourceLists(
        np.concatenate([deepen(p.ids, -1) for p in parts], axis=1),
        np.concatenate([deepen(p.scores, -np.inf) for p in parts], axis=1),
        np.concatenate([p.importance for p in parts], axis=1),
        np.concatenate([p.topics for p in parts], axis=1),
    )


def _lists(
    sources: Sequence[CandidateSource], request: DayRequest, seen: Sequence[np.ndarray]
) -> SourceLists | None:
    """The sources' lists, stacked, with each user's seen items taken out."""
    if not sources:
        return None
    lists = stack_lists([source.lists(request) for source in sources])  # new arrays: edited here
    for row, items in enumerate(seen):
        if items.size:
            lists.ids[row], lists.scores[row] = unseen(lists.ids[row], lists.scores[row], items)
    return lists


def _serve_one(
    settings: PlanSettings,
    merge: Merger,
    popular: Ranked,
    implicit: SourceLists | None,
    explicit: SourceLists | None,
    row: int,
) -> Served:
    im = ex = None
    if implicit is not None:
        importance = implicit.importance[row]
        im = ImplicitLists(implicit.ids[row], implicit.scores[row], importance, importance > 0)
    if explicit is not None:
        real = np.flatnonzero(explicit.topics[row] >= 0)
        ex = ExplicitLists(
            explicit.topics[row, real], explicit.ids[row, real], explicit.scores[row, real]
        )
    got = plan_from_lists(settings=settings, popular=popular, implicit=im, explicit=ex, merge=merge)
    kind = np.array([KINDS.index(s.kind) for s in got.sources], dtype=np.int64)
    topic = np.array([s.key if s.kind == EXPLICIT else -1 for s in got.sources], dtype=np.int64)
    c = got.candidates
    return Served(c.ids, kind[c.source], topic[c.source])
