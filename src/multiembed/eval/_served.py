"""The served candidate lists of many records at once, as `multiembed.retrieve.plan_request`
would return them over an exact index of the corpus.

`plan_request` serves one request and searches an index per call; evaluating
thousands of records that way repeats a corpus scan per record. Here the
searches are batched (`top_n` per embedding over the whole corpus, `max_depth`
deep: enough for any list of the plan), and each record is then served by
`multiembed.retrieve.plan_from_lists`, the plan's own steps over those rows, so
that the evaluation measures what serving returns:

    budgets:  `plan_budgets` (implicit by cluster importance with the floor, explicit
              equal over the K_ex sampled followed topics, the total split between them)
    queries:  explicit embeddings from the conditional model, or without one (when
              asked) `multiembed.retrieve.explicit_standin`, the service's stand-in
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

from typing import NamedTuple

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve import (
    EXPLICIT,
    IMPLICIT,
    ExplicitLists,
    ImplicitLists,
    ImplicitQueries,
    Merger,
    PlanSettings,
    deepest,
    explicit_standin,
    plan_from_lists,
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
    topics: np.ndarray | None = None,
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
        topics: ``[B, K_ex]`` the sampled topics (labels of the explicit lists), or
            None (labelled ``0 .. n_topics - 1``).
    """
    im = ex = None
    if implicit is not None and importance is not None and slot_mask is not None:
        im = ImplicitLists(
            implicit.ids[row],
            implicit.scores[row],
            np.asarray(importance[row], dtype=np.float64),
            np.asarray(slot_mask[row], dtype=bool),
        )
    if explicit is not None:
        sampled = np.arange(n_topics) if topics is None else topics[row, :n_topics]
        ex = ExplicitLists(sampled, explicit.ids[row, :n_topics], explicit.scores[row, :n_topics])
    got = plan_from_lists(settings=settings, popular=popular, implicit=im, explicit=ex, merge=merge)
    within = [  # each list cut to its budget, with its kind
        (source.kind, r.ids[:b])
        for source, r, b in zip(got.sources, got.lists, got.budgets.tolist(), strict=True)
    ]
    return Served(
        got.candidates.ids,
        tuple(ids for kind, ids in within if kind == IMPLICIT),
        tuple(ids for kind, ids in within if kind == EXPLICIT),
    )


def standin_queries(
    embeddings: np.ndarray,
    importance: np.ndarray,
    slot_mask: np.ndarray,
    topics: np.ndarray,
    centroids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The service's explicit queries without a conditional model, for ``B`` records.

    Each record's sampled topics go through `multiembed.retrieve.explicit_standin`
    with its implicit queries (none when no slot is used), as the service does.

    Args:
        embeddings: ``[B, K, D]`` implicit embeddings.
        importance: ``[B, K]`` cluster importance.
        slot_mask: ``[B, K]`` bool used slots.
        topics: ``[B, K_ex]`` sampled topics, ``-1`` pads.
        centroids: ``[n_topics, D]`` unit topic centroids (`topic_centroids`).

    Returns:
        ``topics [B, K_ex]`` the topics kept (in order, ``-1`` pads) and their
        queries ``[B, K_ex, D]`` float32 (0 at padding).
    """
    b, k_ex = topics.shape
    kept = np.full((b, k_ex), -1, dtype=np.int64)
    out = np.zeros((b, k_ex, embeddings.shape[2]), dtype=np.float32)
    for row in range(b):
        mask = np.asarray(slot_mask[row], dtype=bool)
        weights = np.asarray(importance[row], dtype=np.float64)
        implicit = ImplicitQueries(embeddings[row], weights, mask) if mask.any() else None
        sampled = topics[row][topics[row] >= 0]
        q = explicit_standin(sampled, implicit, centroids)
        if q is not None:
            kept[row, : q.topics.size] = q.topics
            out[row, : q.topics.size] = q.embeddings
    return kept, out
