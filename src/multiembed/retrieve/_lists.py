"""The plan over lists searched beforehand: what `plan_request` serves, without an index.

Offline evaluation searches every embedding of many users in one batched scan
and then serves each user from those rows; `plan_from_lists` runs the plan's
own steps on them (`request_budgets`, `fill_from_hits`, `planned_retrieval`,
`popular_retrieval`), so that with rows as deep as `deepest` it returns what
`plan_request` returns over an exact index.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve._fill import fill_from_hits
from multiembed.retrieve._merge import Merger, round_robin_merge
from multiembed.retrieve._plan import (
    Retrieval,
    planned_retrieval,
    popular_retrieval,
    request_budgets,
)
from multiembed.retrieve._search import Clock
from multiembed.retrieve._settings import PlanSettings


class ImplicitLists(NamedTuple):
    """One user's implicit embeddings, each already searched.

    Attributes:
        ids: ``[K, W]`` int64 ranked item ids of each slot, ``-1`` pads at the end.
        scores: ``[K, W]`` float scores, ``-inf`` at padding.
        importance: ``[K]`` cluster importance.
        slot_mask: ``[K]`` bool used slots.
    """

    ids: np.ndarray
    scores: np.ndarray
    importance: np.ndarray
    slot_mask: np.ndarray


class ExplicitLists(NamedTuple):
    """One user's sampled followed topics, each already searched (inside its topic when
    the relevance filter is on, else over every item).

    Attributes:
        topics: ``[T]`` int topics, in sampled order.
        ids: ``[T, W]`` int64 ranked item ids of each topic's embedding, ``-1`` pads.
        scores: ``[T, W]`` float scores, ``-inf`` at padding.
    """

    topics: np.ndarray
    ids: np.ndarray
    scores: np.ndarray


def plan_from_lists(
    *,
    settings: PlanSettings,
    popular: Ranked,
    implicit: ImplicitLists | None = None,
    explicit: ExplicitLists | None = None,
    merge: Merger = round_robin_merge,
) -> Retrieval:
    """One request's `Retrieval` from lists searched beforehand (see the module).

    With every row at least ``deepest(settings.total, settings.overfetch)`` deep (or
    complete), the candidates, sources, budgets, found counts and depths equal
    `plan_request`'s over an exact index of the same items; ``filtered`` is 0 (the
    rows come filtered) and ``stages_ms`` holds the merge only.

    >>> s = PlanSettings(total=3, floor=0)
    >>> im = ImplicitLists(np.array([[1, 2, 3]]), np.ones((1, 3)), np.ones(1), np.ones(1, bool))
    >>> plan_from_lists(settings=s, popular=Ranked(np.zeros(0, np.int64), np.zeros(0)),
    ...                 implicit=im).candidates.ids.tolist()
    [1, 2, 3]
    """
    plan = request_budgets(settings, implicit, explicit)
    clock = Clock()
    if plan.lists == 0:
        return popular_retrieval(popular, settings.total, clock)
    parts = []
    if implicit is not None and plan.slots.size:
        parts.append((implicit.ids[plan.slots], implicit.scores[plan.slots]))
    topics = np.zeros(0, np.int64)
    if explicit is not None and plan.rows.size:
        parts.append((explicit.ids[plan.rows], explicit.scores[plan.rows]))
        topics = explicit.topics[plan.rows]
    width = max(ids.shape[1] for ids, _ in parts)
    ids = np.concatenate([_pad(i, width, -1) for i, _ in parts])  # [L, W]
    scores = np.concatenate([_pad(s, width, -np.inf) for _, s in parts])  # [L, W]
    filled = fill_from_hits(
        ids, scores, plan.budgets, settings.total, overfetch=settings.overfetch, merge=merge
    )
    clock.lap("merge")
    return planned_retrieval(plan, topics, filled, clock.stages)


def _pad(a: np.ndarray, width: int, value: float) -> np.ndarray:
    """``[S, w]`` padded with `value` to ``[S, width]``."""
    if a.shape[1] == width:
        return a
    out = np.full((a.shape[0], width), value, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out
