"""The served candidate lists of many records at once, as `multiembed.retrieve.plan_request`
would return them over an exact index of the corpus.

`plan_request` serves one request and searches an index per call; evaluating
thousands of records that way repeats a corpus scan per record. Here the
searches are batched (`top_n` per embedding over the whole corpus, `max_depth`
deep: enough for any list of the plan), and each record then goes through the
plan's own functions, so that the evaluation measures what serving returns:

    budgets:  `plan_budgets` (implicit by cluster importance with the floor, explicit
              equal over the K_ex sampled followed topics, the total split between them)
    lists:    explicit lists restricted to the corpus items carrying their topic (the
              relevance filter), or over the whole corpus when the filter is off
    merge:    `fill_from_hits`: the plan's first depths, then deeper where the merge
              runs a list dry; `round_robin_merge` (Section 3.5) or `global_topk_merger`
              (Section 4.4)
    neither:  the popularity list

A test checks that the result equals `plan_request` with an `ExactIndex` and a
`TopicIndex` over the same corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve import (
    Merger,
    PlanSettings,
    deepest,
    fill_from_hits,
    plan_budgets,
    round_robin_merge,
)


class SourceLists(NamedTuple):
    """Ranked corpus items of every embedding of ``B`` records (one source kind).

    Attributes:
        ids: ``[B, S, depth]`` int64 item ids, best first, ``-1`` pads.
        scores: ``[B, S, depth]`` float scores, ``-inf`` at padding.
    """

    ids: np.ndarray
    scores: np.ndarray


class Served(NamedTuple):
    """One record's served list and the per-source lists behind it.

    Attributes:
        ids: ``[N]`` int64 merged candidates (at most ``settings.total``).
        implicit: each implicit list cut to its budget (what that embedding retrieved).
        explicit: each explicit list cut to its budget.
    """

    ids: np.ndarray
    implicit: tuple[np.ndarray, ...]
    explicit: tuple[np.ndarray, ...]

    def implicit_ids(self) -> np.ndarray:
        """Distinct ids the implicit embeddings retrieved within their budgets."""
        return _union(self.implicit)

    def explicit_ids(self) -> np.ndarray:
        """Distinct ids the explicit embeddings retrieved within their budgets."""
        return _union(self.explicit)


def max_depth(settings: PlanSettings) -> int:
    """Depth of the batched searches: a list this deep serves the plan exactly (`deepest`)."""
    return deepest(settings.total, settings.overfetch)


def serve_record(
    *,
    settings: PlanSettings,
    popular: Ranked,
    implicit: SourceLists | None = None,
    importance: np.ndarray | None = None,
    slot_mask: np.ndarray | None = None,
    explicit: SourceLists | None = None,
    n_topics: int = 0,
    row: int = 0,
    merge: Merger = round_robin_merge,
) -> Served:
    """The plan's candidates for record `row` of a batch, from precomputed lists.

    Args:
        settings: the plan's `PlanSettings`.
        popular: the popularity list (`Ranked`), served when no list is usable.
        implicit: the batch's implicit `SourceLists` (``S = K``), or None.
        importance: ``[B, K]`` cluster importance, with `implicit`.
        slot_mask: ``[B, K]`` bool used slots, with `implicit`.
        explicit: the batch's explicit `SourceLists` (``S = K_ex`` sampled topics, in
            sampled order, restricted to each topic's items unless
            ``settings.relevance_filter`` is off), or None.
        n_topics: how many of the record's explicit lists are real (the rest pad).
        row: the record's row in the batch.
        merge: `round_robin_merge` or `global_topk_merger`.
    """
    importance_row = mask_row = None
    if implicit is not None and importance is not None and slot_mask is not None:
        importance_row = np.asarray(importance[row], dtype=np.float64)
        mask_row = np.asarray(slot_mask[row], dtype=bool)
    plan = plan_budgets(
        settings,
        importance=importance_row,
        slot_mask=mask_row,
        n_topics=n_topics if explicit is not None else 0,
    )
    if plan.lists == 0:
        merged = round_robin_merge([popular], np.array([settings.total]), settings.total)
        return Served(merged.ids, (), ())
    parts = []
    if implicit is not None and plan.slots.size:
        parts.append((implicit.ids[row, plan.slots], implicit.scores[row, plan.slots]))
    if explicit is not None and plan.rows.size:
        parts.append((explicit.ids[row, plan.rows], explicit.scores[row, plan.rows]))
    width = max(ids.shape[1] for ids, _ in parts)
    ids = np.concatenate([_pad(i, width, -1) for i, _ in parts])  # [L, W]
    scores = np.concatenate([_pad(s, width, -np.inf) for _, s in parts])
    budgets = plan.budgets
    filled = fill_from_hits(
        ids, scores, budgets, settings.total, overfetch=settings.overfetch, merge=merge
    )
    within = tuple(r.ids[:b] for r, b in zip(filled.lists, budgets.tolist(), strict=True))
    n_im = plan.slots.size
    return Served(filled.candidates.ids, within[:n_im], within[n_im:])


def _pad(a: np.ndarray, width: int, value: float) -> np.ndarray:
    """``[S, w]`` padded with `value` to ``[S, width]``."""
    if a.shape[1] == width:
        return a
    out = np.full((a.shape[0], width), value, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def _union(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
