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


def _explicit_lists(
    explicit: ExplicitRun,
    data: EvalData,
    rows: np.ndarray,
    settings: PlanSettings,
    corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
    depth: int,
    batch_size: int,
) -> tuple[SourceLists, np.ndarray]:
    """Lists of the K_ex sampled topics of each record (inside each topic, unless the
    relevance filter is off), and the topics ``[b, K_ex]`` (``-1`` pads)."""
    rec = data.records
    corpus_emb = corpus[1]
    topics = _sampled_topics(data, rows, settings.k_ex)  # [b, K_ex]
    real = topics >= 0
    pairs = np.flatnonzero(real.ravel())  # (record, topic) pairs to embed
    owner = rows[pairs // settings.k_ex]
    emb = np.zeros((topics.size, corpus_emb.shape[1]), dtype=np.float32)  # [b * K_ex, D]
    if pairs.size:
        emb[pairs] = embed_conditioned(
            explicit.model,
            rec.history[owner],
            rec.history_valid[owner],
            topics.ravel()[pairs],
            batch_size=batch_size,
        )
    queries = emb.reshape(rows.size, settings.k_ex, -1)
    return _topic_lists(queries, topics, settings, corpus, depth), topics


def _topic_lists(
    queries: np.ndarray,
    topics: np.ndarray,
    settings: PlanSettings,
    corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
    depth: int,
) -> SourceLists:
    """Lists of explicit `queries` ``[b, K_ex, D]`` for `topics` ``[b, K_ex]`` (``-1``
    pads): inside each topic, unless the relevance filter is off."""
    corpus_ids, corpus_emb, corpus_topics = corpus
    inside = settings.relevance_filter
    return _source_lists(
        queries,
        topics >= 0,
        corpus_ids,
        corpus_emb,
        depth,
        topics if inside else None,
        corpus_topics if inside else None,
    )


def _standin_lists(
    implicit: ImplicitRun,
    data: EvalData,
    rows: np.ndarray,
    settings: PlanSettings,
    corpus: tuple[np.ndarray, np.ndarray, np.ndarray],
    depth: int,
    centroids: np.ndarray,
) -> tuple[SourceLists, np.ndarray]:
    """Lists of the sampled topics of each record searched with the service's stand-in
    queries (`standin_queries`), and the topics kept ``[b, K_ex]`` (``-1`` pads)."""
    users = implicit.users
    topics, queries = standin_queries(
        users.embeddings[rows],
        users.importance[rows],
        users.slot_mask[rows],
        _sampled_topics(data, rows, settings.k_ex),
        centroids,
    )
    return _topic_lists(queries, topics, settings, corpus, depth), topics


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
        if explicit is not None:
            corpus = (corpus_ids, explicit.items[corpus_ids], corpus_topics)
            ex_lists, topics = _explicit_lists(
                explicit, data, rows, settings, corpus, depth, batch_size
            )
        elif implicit is not None and centroids is not None:
            corpus = (corpus_ids, implicit.items[corpus_ids], corpus_topics)
            ex_lists, topics = _standin_lists(
                implicit, data, rows, settings, corpus, depth, centroids
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
        implicit, explicit = served.implicit_ids(), served.explicit_ids()
        if implicit.size and explicit.size:
            out.user_array("overlap")[u] = candidate_overlap(implicit, explicit)
