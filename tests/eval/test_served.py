"""Batched served lists equal `plan_request` over an exact index of the same corpus."""

from __future__ import annotations

import numpy as np
import pytest

from multiembed.eval._served import SourceLists, max_depth, serve_record
from multiembed.eval.metrics import top_n
from multiembed.index import ExactIndex, ItemTopics, Ranked, TopicIndex
from multiembed.retrieve import (
    ExplicitQueries,
    ImplicitQueries,
    PlanSettings,
    global_topk_merger,
    plan_request,
    round_robin_merge,
)

D, C, N_TOPICS, K, K_EX = 6, 300, 6, 4, 3
MERGES = {"round_robin": round_robin_merge, "global_topk": global_topk_merger}


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(5000, C, replace=False)).astype(np.int64)
    x = rng.standard_normal((C, D)).astype(np.float32)
    topics = np.stack([rng.integers(0, N_TOPICS, C), rng.integers(-1, N_TOPICS, C)], axis=1)
    has = topics >= 0
    item_topics = ItemTopics.from_pairs(
        np.broadcast_to(ids[:, None], topics.shape)[has], topics[has]
    )
    index = ExactIndex(D)
    index.add(ids, x)
    popular = Ranked(ids[::-1].copy(), np.linspace(1, 0, C).astype(np.float32))
    return ids, x, topics, index, TopicIndex.build(ids, x, item_topics), popular


def lists(q, mask, ids, x, depth, topics=None, corpus_topics=None):
    b, s, d = q.shape
    top = top_n(
        q.reshape(b * s, d),
        x,
        depth,
        query_mask=mask.reshape(-1),
        item_topics=corpus_topics,
        condition=None if topics is None else np.maximum(topics.reshape(-1), 0),
    )
    got = np.where(top.positions >= 0, ids[np.maximum(top.positions, 0)], -1)
    return SourceLists(got.reshape(b, s, -1), top.scores.reshape(b, s, -1))


CASES = ["both", "implicit", "explicit", "neither", "short_history", "overlap"]


@pytest.mark.parametrize("relevance_filter", [True, False])
@pytest.mark.parametrize("merge", list(MERGES))
@pytest.mark.parametrize("case", CASES)
def test_serve_record_equals_plan_request(corpus, merge, case, relevance_filter):
    ids, x, topics, index, topic_index, popular = corpus
    settings = PlanSettings(total=40, k_ex=K_EX, floor=3, relevance_filter=relevance_filter)
    rng = np.random.default_rng(CASES.index(case))
    b = 6
    emb = rng.standard_normal((b, K, D)).astype(np.float32)
    if case == "overlap":  # near-copies: the lists repeat each other, dedup needs a refill
        emb = emb[:, :1] + 0.01 * emb
    mask = np.ones((b, K), bool)
    importance = rng.dirichlet(np.ones(K), b).astype(np.float32) * 10
    if case == "short_history":
        mask[:, 2:] = False
        importance[:, 2:] = 0
    ex_emb = rng.standard_normal((b, K_EX, D)).astype(np.float32)
    sampled = np.stack([rng.permutation(N_TOPICS)[:K_EX] for _ in range(b)])
    sampled[0, 1:] = -1  # one topic only
    if case == "overlap":
        ex_emb = emb[:, :1] + 0.01 * ex_emb
    use_im = case in ("both", "implicit", "short_history", "overlap")
    use_ex = case in ("both", "explicit", "overlap")
    depth = max_depth(settings)
    im = lists(emb, mask, ids, x, depth) if use_im else None
    ex = None
    if use_ex and relevance_filter:
        ex = lists(ex_emb, sampled >= 0, ids, x, depth, sampled, topics)
    elif use_ex:  # the filter off: the whole corpus
        ex = lists(ex_emb, sampled >= 0, ids, x, depth)
    for row in range(b):
        n_topics = int((sampled[row] >= 0).sum())
        served = serve_record(
            settings=settings,
            popular=popular,
            implicit=im,
            importance=importance if use_im else None,
            slot_mask=mask if use_im else None,
            explicit=ex,
            n_topics=n_topics,
            row=row,
            merge=MERGES[merge],
        )
        reference = plan_request(
            index=index,
            popular=popular,
            settings=settings,
            implicit=ImplicitQueries(emb[row], importance[row], mask[row]) if use_im else None,
            explicit=ExplicitQueries(sampled[row, :n_topics], ex_emb[row, :n_topics])
            if use_ex
            else None,
            topic_index=topic_index,
            merge=MERGES[merge],
        )
        assert served.ids.tolist() == reference.candidates.ids.tolist()
        assert served.ids.size == settings.total  # the corpus holds enough items
        assert len(served.implicit) == sum(s.kind == "implicit" for s in reference.sources)
        assert len(served.explicit) == sum(s.kind == "explicit" for s in reference.sources)
