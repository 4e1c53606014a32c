"""The served candidate lists of many records at once, as `multiembed.retrieve.plan_request`
would return them over an exact index of the corpus.

`plan_request` serves one request and searches an index per call; evaluating
thousands of records that way repeats a corpus scan per record. Here the
searches are batched (`top_n` per embedding over the whole corpus, deep enough
for any budget), and each record then goes through the plan's own steps with
the retrieval package's functions:

    implicit: budgets by cluster importance (`implicit_budgets`, with the floor),
              lists ordered by importance, searched ``budget + ceil(overfetch * budget)`` deep
    explicit: K_ex sampled followed topics (`sample_topics`), equal budgets
              (`equal_budgets`), each list restricted to the corpus items carrying its topic
              (the relevance post-filter)
    both:     the total split in proportion to the number of lists of each kind
    neither:  the popularity list
    merge:    `round_robin_merge` (Section 3.5) or `global_topk_merger` (Section 4.4)

A test checks that the result equals `plan_request` with an `ExactIndex` and a
`TopicIndex` over the same corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve import (
    Merger,
    PlanSettings,
    equal_budgets,
    implicit_budgets,
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
    """Deepest list the plan can ask for: the whole total plus its overfetch."""
    return settings.total + math.ceil(settings.overfetch * settings.total)


def _depths(budgets: np.ndarray, overfetch: float, lists: int) -> np.ndarray:
    if lists <= 1:
        return budgets.copy()
    return budgets + np.ceil(overfetch * budgets).astype(np.int64)


def _ranked(ids: np.ndarray, scores: np.ndarray, depth: int) -> Ranked:
    keep = ids[:depth] >= 0
    return Ranked(ids[:depth][keep], scores[:depth][keep].astype(np.float32))


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
            sampled order, already restricted to each topic's items), or None.
        n_topics: how many of the record's explicit lists are real (the rest pad).
        row: the record's row in the batch.
        merge: `round_robin_merge` or `global_topk_merger`.
    """
    used = np.zeros(0, dtype=bool)
    imp = np.zeros(0)
    if implicit is not None and importance is not None and slot_mask is not None:
        imp = np.asarray(importance[row], dtype=np.float64)
        used = slot_mask[row] & (imp > 0)
    n_im = int(used.sum())
    n_ex = n_topics if explicit is not None else 0
    if n_im == 0 and n_ex == 0:
        merged = round_robin_merge([popular], np.array([settings.total]), settings.total)
        return Served(merged.ids, (), ())
    if n_im and n_ex:
        share = n_im / (n_im + n_ex) if settings.implicit_share is None else settings.implicit_share
        im_total = min(settings.total, round(settings.total * share))
    else:
        im_total = settings.total if n_im else 0
    im_b = np.zeros(0, dtype=np.int64)
    ex_b = np.zeros(0, dtype=np.int64)
    if n_im and slot_mask is not None:
        im_b = implicit_budgets(imp, im_total, floor=settings.floor, mask=slot_mask[row])
    if n_ex:
        ex_b = equal_budgets(n_ex, settings.total - im_total)
    im_slots = np.flatnonzero(im_b > 0)
    im_slots = im_slots[np.argsort(-imp[im_slots], kind="stable")]  # most important first
    ex_rows = np.flatnonzero(ex_b > 0)
    n_lists = im_slots.size + ex_rows.size
    lists: list[Ranked] = []
    budgets: list[int] = []
    for source, rows, b in ((implicit, im_slots, im_b), (explicit, ex_rows, ex_b)):
        if source is None or rows.size == 0:
            continue
        for r, d in zip(rows, _depths(b[rows], settings.overfetch, n_lists), strict=True):
            lists.append(_ranked(source.ids[row, r], source.scores[row, r], int(d)))
            budgets.append(int(b[r]))
    merged = merge(lists, np.array(budgets, dtype=np.int64), settings.total)
    within = tuple(r.ids[:b] for r, b in zip(lists, budgets, strict=True))
    return Served(merged.ids, within[: im_slots.size], within[im_slots.size :])


def _union(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
