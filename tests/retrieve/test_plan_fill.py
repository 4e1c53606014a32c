"""plan_request fills its budget, and serves explicit embeddings with or without the filter."""

from __future__ import annotations

import numpy as np
import pytest

from multiembed.errors import ConfigError
from multiembed.index import ExactIndex, ItemTopics, Ranked, TopicIndex
from multiembed.retrieve import (
    EXPLICIT,
    ExplicitQueries,
    ImplicitQueries,
    PlanSettings,
    plan_request,
    round_robin_merge,
)
from tests.retrieve.test_plan import (
    N_ITEMS,
    CountingIndex,
    D,
    explicit_queries,
    implicit_queries,
    world_arrays,
)

World = tuple[ExactIndex, TopicIndex, Ranked]


@pytest.fixture(scope="module")
def world() -> World:
    """The exact world of ``test_plan``: 600 items, two topics each."""
    ids, x, it = world_arrays()
    index = ExactIndex(D)
    index.add(ids, x)
    popular = Ranked(ids[::-1].copy(), np.linspace(1.0, 0.0, N_ITEMS, dtype=np.float32))
    return index, TopicIndex.build(ids, x, it), popular


def complete(index: ExactIndex, queries: np.ndarray) -> list[Ranked]:
    """Every query's ranking of the whole index."""
    hits = index.search(queries, index.size)
    return [hits.row(q) for q in range(queries.shape[0])]


def walk(r, lists: list[Ranked], total: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The round-robin walk over complete lists, with the plan's budgets."""
    return round_robin_merge(lists, r.budgets, total).ids.tolist()


@pytest.mark.parametrize("total", [10, 20, 100])
def test_lists_that_find_the_same_items_still_fill_the_budget(world: World, total: int) -> None:
    """Seven copies of one embedding: each list repeats the others, so dedup leaves
    the first search of every list short; the plan searches them deeper."""
    index, _, popular = world
    one = implicit_queries(k=1).embeddings
    same = ImplicitQueries(np.repeat(one, 7, axis=0), np.linspace(3.0, 1.0, 7), np.ones(7, bool))
    r = plan_request(
        index=index, popular=popular, settings=PlanSettings(total=total), implicit=same
    )
    assert len(r) == total
    assert len(set(r.candidates.ids.tolist())) == total
    # in phase 1 each list places its own budget, in importance order
    assert np.bincount(r.candidates.source, minlength=7).tolist() == r.budgets.tolist()
    assert (r.depths > r.budgets).all()
    assert "refill" in r.stages_ms
    want = walk(r, complete(index, same.embeddings[np.argsort(-same.importance)]), total)
    assert r.candidates.ids.tolist() == want


def test_the_count_equals_the_budget_whenever_the_items_exist(world: World) -> None:
    index, topic_index, popular = world
    rng = np.random.default_rng(3)
    base = rng.standard_normal((1, D)).astype(np.float32)
    for seed in range(6):
        near = base + 0.05 * np.random.default_rng(seed).standard_normal((5, D)).astype(np.float32)
        im = ImplicitQueries(near, np.ones(5), np.ones(5, bool))
        ex = ExplicitQueries(np.array([1, 2]), np.repeat(base, 2, axis=0))
        for total in (7, 33, 250):
            r = plan_request(
                index=index,
                popular=popular,
                settings=PlanSettings(total=total, floor=1),
                implicit=im,
                explicit=ex,
                topic_index=topic_index,
            )
            assert len(r) == total, (seed, total)
    huge = plan_request(
        index=index, popular=popular, settings=PlanSettings(total=5 * N_ITEMS), implicit=im
    )
    assert len(huge) == N_ITEMS  # every item, once


def test_without_the_relevance_filter_explicit_embeddings_search_everything(world: World) -> None:
    index, topic_index, popular = world
    ex = explicit_queries([0, 1, 2])
    settings = PlanSettings(total=60, relevance_filter=False)
    r = plan_request(index=index, popular=popular, settings=settings, explicit=ex)  # no topics
    assert [s.kind for s in r.sources] == [EXPLICIT] * 3
    assert r.filtered.tolist() == [0, 0, 0]
    assert len(r) == 60
    assert r.candidates.ids.tolist() == walk(r, complete(index, ex.embeddings), 60)
    it = topic_index.item_topics
    on_topic = [
        bool(it.contains(r.candidates.ids[n : n + 1], r.sources[int(s)].key)[0])
        for n, s in enumerate(r.candidates.source.tolist())
    ]
    assert not all(on_topic)  # off-topic items are served: the filter is off
    filtered = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=60),
        explicit=ex,
        topic_index=topic_index,
    )
    assert filtered.candidates.ids.tolist() != r.candidates.ids.tolist()


def test_without_the_filter_explicit_rows_join_the_implicit_call(world: World) -> None:
    index, topic_index, popular = world
    counting = CountingIndex(index)
    r = plan_request(
        index=counting,  # type: ignore[arg-type]
        popular=popular,
        settings=PlanSettings(total=80, relevance_filter=False),
        implicit=implicit_queries(k=3),
        explicit=explicit_queries([4, 5]),
        topic_index=topic_index,
    )
    assert counting.rows[0] == 5  # 3 implicit and 2 explicit rows, one call
    assert len(r) == 80


def test_without_the_filter_explicit_rows_search_their_own_item_index(world: World) -> None:
    """A conditional model has its own item tower: its embeddings search its index."""
    index, _, popular = world
    ids = np.arange(5000, 5050, dtype=np.int64)  # other items, so that the source is plain
    own = ExactIndex(D)
    own.add(ids, np.random.default_rng(9).standard_normal((50, D)).astype(np.float32))
    counting = CountingIndex(own)
    r = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=40, relevance_filter=False),
        implicit=implicit_queries(k=2),
        explicit=explicit_queries([1, 3]),
        explicit_index=counting,  # type: ignore[arg-type]
    )
    assert counting.rows  # searched there ...
    explicit = [s.kind == EXPLICIT for s in r.sources]
    from_explicit = np.array(explicit)[r.candidates.source]
    assert np.isin(r.candidates.ids[from_explicit], ids).all()  # ... and only there
    assert not np.isin(r.candidates.ids[~from_explicit], ids).any()


def test_the_filter_switch_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"plan.relevance_filter = 'no': must be a bool"):
        PlanSettings(relevance_filter="no")  # type: ignore[arg-type]


def test_budget_a_small_topic_leaves_is_searched_for_at_once(world: World) -> None:
    """A followed topic of 5 items with a budget of 20: the implicit list is first
    searched for its own budget and the 15 the topic leaves, so the request needs no
    second search (`first_depths` with the lists' reach), and serves the walk."""
    index, _, popular = world
    ids, x, _ = world_arrays()
    query = x[:1] + 0.1
    far = ids[np.argsort(x @ query[0])[:5]]  # the topic: the 5 items least like the query
    topics = ItemTopics.from_pairs(far, np.zeros(5, dtype=np.int64))
    r = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=40, overfetch=0.0, implicit_share=0.5),
        implicit=ImplicitQueries(query, np.ones(1), np.ones(1, bool)),
        explicit=ExplicitQueries(np.array([0]), x[:1]),
        topic_index=TopicIndex.build(ids, x, topics),
    )
    assert r.budgets.tolist() == [20, 20]
    assert r.found.tolist() == [35, 5]
    assert "refill" not in r.stages_ms
    implicit, explicit = complete(index, np.concatenate([query, x[:1]]))
    on_topic = np.isin(explicit.ids, far)
    lists = [implicit, Ranked(explicit.ids[on_topic], explicit.scores[on_topic])]
    assert r.candidates.ids.tolist() == walk(r, lists, 40)
