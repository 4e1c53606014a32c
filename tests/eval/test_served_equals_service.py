"""Offline served lists equal the service's, stand-in explicit queries included.

The service (`multiembed.serve.retrieve`) embeds the sampled topics with
`explicit_standin` when it has no conditional model and calls `plan_request` on
its index; the evaluation builds the same queries for a batch
(`standin_queries`), scans the corpus once and serves each record with
`serve_record`. For the same user, index and budget both must give the same list.
"""

from __future__ import annotations

import numpy as np
import pytest

from multiembed.eval._served import max_depth, serve_record, standin_queries
from multiembed.index import ExactIndex, ItemTopics, Ranked, TopicIndex
from multiembed.retrieve import (
    ImplicitQueries,
    PlanSettings,
    explicit_standin,
    plan_request,
    topic_centroids,
)
from tests.eval.test_served import lists

D, C, N_TOPICS, K, K_EX, B = 6, 240, 7, 4, 3, 5


@pytest.mark.parametrize("relevance_filter", [True, False])
def test_eval_serves_what_the_service_serves(relevance_filter: bool) -> None:
    rng = np.random.default_rng(3)
    ids = np.arange(C, dtype=np.int64)
    x = rng.standard_normal((C, D)).astype(np.float32)
    topics = np.stack([rng.integers(0, N_TOPICS - 1, C), rng.integers(-1, N_TOPICS - 1, C)], 1)
    has = topics >= 0  # topic N_TOPICS - 1 has no item: its centroid is 0, it is dropped
    item_topics = ItemTopics.from_pairs(
        np.broadcast_to(ids[:, None], topics.shape)[has], topics[has]
    )
    index = ExactIndex(D)
    index.add(ids, x)
    topic_index = TopicIndex.build(ids, x, item_topics)
    popular = Ranked(ids[::-1].copy(), np.linspace(1, 0, C).astype(np.float32))
    centroids = topic_centroids(item_topics, x, N_TOPICS)
    settings = PlanSettings(total=30, k_ex=K_EX, floor=2, relevance_filter=relevance_filter)

    emb = rng.standard_normal((B, K, D)).astype(np.float32)
    importance = rng.dirichlet(np.ones(K), B) * 5
    mask = np.ones((B, K), bool)
    mask[1, 2:] = False  # a short history
    importance[1, 2:] = 0
    mask[2] = False  # no usable history: the topics' centroids
    importance[2] = 0
    sampled = np.stack([rng.permutation(N_TOPICS)[:K_EX] for _ in range(B)])
    sampled[3, 1:] = -1  # one followed topic
    sampled[4] = -1  # none: implicit only

    # offline: one batched scan, then each record from its rows
    kept, queries = standin_queries(emb, importance, mask, sampled, centroids)
    depth = max_depth(settings)
    im = lists(emb, mask, ids, x, depth)
    inside = (kept, topics) if relevance_filter else (None, None)
    ex = lists(queries, kept >= 0, ids, x, depth, *inside)
    kinds = []
    for row in range(B):
        served = serve_record(
            settings=settings,
            popular=popular,
            implicit=im,
            importance=importance,
            slot_mask=mask,
            explicit=ex,
            n_topics=int((kept[row] >= 0).sum()),
            row=row,
            topics=kept,
        )
        # the service: its implicit queries, the stand-in, plan_request on the index
        implicit = (
            ImplicitQueries(emb[row], importance[row], mask[row]) if mask[row].any() else None
        )
        followed = sampled[row][sampled[row] >= 0]
        explicit = explicit_standin(followed, implicit, centroids)
        service = plan_request(
            index=index,
            popular=popular,
            settings=settings,
            implicit=implicit,
            explicit=explicit,
            topic_index=topic_index,
        )
        assert served.ids.tolist() == service.candidates.ids.tolist(), row
        n_im = sum(s.kind == "implicit" for s in service.sources)
        assert len(served.implicit) == n_im, row
        assert len(served.explicit) == len(service.sources) - n_im, row
        assert served.ids.size == settings.total
        kinds.append({s.kind for s in service.sources})
    # taste stand-in (row 0), centroid stand-in (row 2) and implicit only (row 4) all ran
    assert kinds[0] == {"implicit", "explicit"}
    assert kinds[2] == {"explicit"}
    assert kinds[4] == {"implicit"}
