"""The served lists of every record of an evaluation, batched as the service serves them.

`served_lists` searches every record's embeddings over the corpus in batches
(`top_n`, `max_depth` deep), serves each record with `serve_record` under both
merge strategies and collects the served hit, interest coverage, topic
diversity and implicit/explicit overlap. Explicit lists come from the
conditional model, or (asked for with ``standin``) from the service's stand-in
queries over the implicit model's item vectors.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from multiembed.eval._progress import Stages
from multiembed.eval._ranking import served_hits
from multiembed.eval._records import EvalData
from multiembed.eval._report import EXPLICIT_SEED, Collected
from multiembed.eval._scores import top_n
from multiembed.eval._served import (
    Served,
    SourceLists,
    max_depth,
    serve_record,
    standin_queries,
)
from multiembed.eval._sets import candidate_overlap, interest_coverage, topic_diversity
from multiembed.index import ItemTopics, Ranked
from multiembed.retrieve import (
    PlanSettings,
    global_topk_merger,
    round_robin_merge,
    sample_topics,
    topic_centroids,
)
from multiembed.runs import ConditionalModel, UserBatch, embed_conditioned

STRATEGIES = {"round_robin": round_robin_merge, "global_topk": global_topk_merger}


class ImplicitRun(NamedTuple):
    """The implicit model's item embeddings ``[N, D]`` and record embeddings."""

    items: np.ndarray
    users: UserBatch


class ExplicitRun(NamedTuple):
    """The conditional model and its item embeddings ``[N, D]``."""

    model: ConditionalModel
    items: np.ndarray


def _sampled_topics(data: EvalData, rows: np.ndarray, k_ex: int) -> np.ndarray:
    """``[b, K_ex]`` the followed topics each record's request samples, ``-1`` pads."""
    rec = data.records
    out = np.full((rows.size, k_ex), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        f = rec.followed[r]
        t = sample_topics(f[f >= 0], k_ex, seed=EXPLICIT_SEED, user=int(rec.user[r]))
        out[i, : t.size] = t
    return out


def _source_lists(
    queries: np.ndarray,
    mask: np.ndarray,
    corpus_ids: np.ndarray,
    corpus_emb: np.ndarray,
    depth: int,
    topics: np.ndarray | None = None,
    corpus_topics: np.ndarray | None = None,
) -> SourceLists:
    """Top-`depth` corpus items of every embedding ``[b, S, D]`` (filtered by topic if given)."""
    b, s, d = queries.shape
    top = top_n(
        queries.reshape(b * s, d),
        corpus_emb,
        depth,
        query_mask=mask.reshape(b * s),
        item_topics=corpus_topics,
        condition=None if topics is None else np.maximum(topics.reshape(b * s), 0),
    )
    ids = np.where(top.positions >= 0, corpus_ids[np.maximum(top.positions, 0)], -1)
    return SourceLists(ids.reshape(b, s, -1), top.scores.reshape(b, s, -1))


def _conditioned(
    explicit: ExplicitRun, data: EvalData, rows: np.ndarray, k_ex: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """The K_ex sampled topics of each record ``[b, K_ex]`` (``-1`` pads) and their
    conditioned embeddings ``[b, K_ex, D]`` (0 at padding)."""
    rec = data.records
    topics = _sampled_topics(data, rows, k_ex)  # [b, K_ex]
    pairs = np.flatnonzero(topics.ravel() >= 0)  # (record, topic) pairs to embed
    owner = rows[pairs // k_ex]
    emb = np.zeros((topics.size, explicit.items.shape[1]), dtype=np.float32)  # [b * K_ex, D]
    if pairs.size:
        emb[pairs] = embed_conditioned(
            explicit.model,
            rec.history[owner],
            rec.history_valid[owner],
            topics.ravel()[pairs],
            batch_size=batch_size,
        )
    return topics, emb.reshape(rows.size, k_ex, -1)


def _centroids(data: EvalData, items: np.ndarray) -> np.ndarray:
    """``[n_topics, D]`` the service's topic centroids over every item's vectors `items`."""
    has = data.item_topics >= 0  # [N, T]
    owners = np.broadcast_to(np.arange(data.n_items)[:, None], has.shape)[has]
    item_topics = ItemTopics.from_pairs(owners, data.item_topics[has])
    n_topics = 1 + max(
        int(data.item_topics.max(initial=-1)), int(data.records.followed.max(initial=-1))
    )
    return topic_centroids(item_topics, items, n_topics)


def served_lists(
    data: EvalData,
    settings: PlanSettings,
    out: Collected,
    stages: Stages,
    batch_size: int,
    *,
    implicit: ImplicitRun | None,
    explicit: ExplicitRun | None,
    standin: bool = False,
) -> None:
    """Serve every record with both merge strategies; collect hits, coverage, diversity.

    Explicit lists come from the conditional model, or with `standin` (and no
    conditional model) from the service's stand-in queries."""
    rec = data.records
    corpus_ids = np.sort(data.corpus)  # ties by smaller id, as an ExactIndex over the corpus
    corpus_topics = data.item_topics[corpus_ids]
    popular = Ranked(data.corpus, data.corpus_counts.astype(np.float32))
    depth = max_depth(settings)
    user_of = np.full(len(rec), -1, dtype=np.int64)  # the user whose request a record is
    user_of[rec.first] = np.arange(rec.users.size)
    targets = rec.user_items()
    centroids = None
    if explicit is None and standin and implicit is not None:
        centroids = _centroids(data, implicit.items)
    step = stages.stage(f"served lists (budget {settings.total})", -(-len(rec) // batch_size))
    for start in range(0, len(rec), batch_size):
        rows = np.arange(start, min(start + batch_size, len(rec)))
        im_lists = ex_lists = importance = slot_mask = None
        topics = np.full((rows.size, 1), -1, dtype=np.int64)
        if implicit is not None:
            importance = implicit.users.importance[rows]
            slot_mask = implicit.users.slot_mask[rows]
            im_lists = _source_lists(
                implicit.users.embeddings[rows],
                slot_mask,
                corpus_ids,
                implicit.items[corpus_ids],
                depth,
            )
        ex = None  # item vectors, topics [b, K_ex] (-1 pads) and their queries [b, K_ex, D]
        if explicit is not None:
            ex = (explicit.items, *_conditioned(explicit, data, rows, settings.k_ex, batch_size))
        elif implicit is not None and centroids is not None:
            users, sampled = implicit.users, _sampled_topics(data, rows, settings.k_ex)
            ex = (
                implicit.items,
                *standin_queries(
                    users.embeddings[rows],
                    users.importance[rows],
                    users.slot_mask[rows],
                    sampled,
                    centroids,
                ),
            )
        if ex is not None:  # inside each topic, unless the relevance filter is off
            items, topics, queries = ex
            inside = settings.relevance_filter
            ex_lists = _source_lists(
                queries,
                topics >= 0,
                corpus_ids,
                items[corpus_ids],
                depth,
                topics if inside else None,
                corpus_topics if inside else None,
            )
        n_topics = (topics >= 0).sum(axis=1)
        for i, r in enumerate(rows):
            for name, merge in STRATEGIES.items():
                served = serve_record(
                    settings=settings,
                    popular=popular,
                    implicit=im_lists,
                    importance=importance,
                    slot_mask=slot_mask,
                    explicit=ex_lists,
                    n_topics=int(n_topics[i]),
                    row=i,
                    merge=merge,
                    topics=topics,
                )
                _collect_served(out, data, targets, name, int(r), int(user_of[r]), served)
        step()


def _collect_served(
    out: Collected,
    data: EvalData,
    targets: list[np.ndarray],
    strategy: str,
    r: int,
    u: int,
    served: Served,
) -> None:
    """Record `r`'s served-list hit; coverage, diversity, overlap when it is user `u`'s request."""
    hit = served_hits([served.ids], data.records.target[r : r + 1])[0]
    out.record_array(f"served_hr_{strategy}")[r] = float(hit)
    out.record_array(f"candidates_{strategy}")[r] = served.ids.size
    if u < 0:
        return
    out.user_array(f"coverage_{strategy}")[u] = interest_coverage(
        [targets[u]], [served.ids], data.item_topics
    )[0]
    out.user_array(f"diversity_{strategy}")[u] = topic_diversity([served.ids], data.item_topics)[0]
    if strategy == "round_robin" and served.implicit and served.explicit:
        # the ids each kind of list retrieved within its budget (the overlap counts each once)
        implicit, explicit = np.concatenate(served.implicit), np.concatenate(served.explicit)
        if implicit.size and explicit.size:
            out.user_array("overlap")[u] = candidate_overlap(implicit, explicit)
