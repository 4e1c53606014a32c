"""plan_request: the per-request plan over a small exact world."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multiembed.retrieve._search as search_module
from multiembed.errors import ConfigError
from multiembed.index import (
    ExactIndex,
    FaissIndex,
    Hits,
    ItemTopics,
    Ranked,
    TopicHits,
    TopicIndex,
    VectorIndex,
)
from multiembed.retrieve import (
    EXPLICIT,
    IMPLICIT,
    POPULAR,
    ExplicitQueries,
    ImplicitQueries,
    PlanSettings,
    Retrieval,
    RetrievalInputError,
    Source,
    global_topk_merger,
    implicit_budgets,
    plan_request,
    sample_topics,
)
from multiembed.retrieve._search import _cut

D = 8
N_ITEMS = 600
N_TOPICS = 10


def world_arrays() -> tuple[np.ndarray, np.ndarray, ItemTopics]:
    """Item ids ``[C]``, unit vectors ``[C, D]`` and two topics per item."""
    rng = np.random.default_rng(0)
    ids = np.arange(1000, 1000 + N_ITEMS, dtype=np.int64)
    x = rng.standard_normal((N_ITEMS, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    primary = rng.integers(0, N_TOPICS, N_ITEMS)
    extra = rng.integers(0, N_TOPICS, N_ITEMS)
    it = ItemTopics.from_pairs(np.concatenate([ids, ids]), np.concatenate([primary, extra]))
    return ids, x, it


@pytest.fixture(scope="module")
def world() -> tuple[ExactIndex, TopicIndex, Ranked]:
    ids, x, it = world_arrays()
    index = ExactIndex(D)
    index.add(ids, x)
    popular = Ranked(ids[::-1].copy(), np.linspace(1.0, 0.0, N_ITEMS, dtype=np.float32))
    return index, TopicIndex.build(ids, x, it), popular


def implicit_queries(k: int = 7, seed: int = 1) -> ImplicitQueries:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((k, D)).astype(np.float32)
    importance = rng.dirichlet(np.ones(k)) * 20  # sums of routing weights
    return ImplicitQueries(emb, importance, np.ones(k, dtype=bool))


def explicit_queries(followed: list[int], k_ex: int = 5, user: int = 7) -> ExplicitQueries:
    topics = sample_topics(np.array(followed, dtype=np.int64), k_ex, seed=0, user=user)
    emb = np.random.default_rng(user).standard_normal((topics.size, D)).astype(np.float32)
    return ExplicitQueries(topics, emb)


def check_clean(r: Retrieval, total: int) -> None:
    c = r.candidates
    assert len(r) == total
    assert (c.ids >= 0).all()
    assert np.isfinite(c.scores).all()
    assert len(set(c.ids.tolist())) == len(c)
    assert int(r.budgets.sum()) == total


def test_many_topics_and_history(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, topic_index, popular = world
    settings = PlanSettings(total=200, floor=5)
    im, ex = implicit_queries(), explicit_queries([0, 1, 2, 3, 4, 5, 6, 7])
    r = plan_request(
        index=index,
        popular=popular,
        settings=settings,
        implicit=im,
        explicit=ex,
        topic_index=topic_index,
    )
    check_clean(r, 200)
    kinds = [s.kind for s in r.sources]
    assert kinds == [IMPLICIT] * 7 + [EXPLICIT] * 5
    # implicit first, most important first; budgets split 7:5 then by importance / equally
    order = np.argsort(-im.importance, kind="stable")
    assert [s.key for s in r.sources[:7]] == order.tolist()
    assert r.budgets[:7].sum() == round(200 * 7 / 12)
    assert r.budgets[:7].tolist() == implicit_budgets(im.importance, 117, floor=5)[order].tolist()
    assert r.budgets[7:].tolist() == [17, 17, 17, 16, 16]
    assert [s.key for s in r.sources[7:]] == ex.topics.tolist()
    # explicit candidates carry their topic (relevance filter)
    it = topic_index.item_topics
    for n in range(len(r)):
        src = r.sources[int(r.candidates.source[n])]
        if src.kind == EXPLICIT:
            assert it.contains(r.candidates.ids[n : n + 1], src.key)[0]
    # records carry full provenance
    rec = r.records()
    assert rec[0].item_id == int(r.candidates.ids[0])
    assert rec[0].found_by[0].source in r.sources
    assert set(r.stages_ms) == {"budgets", "search_implicit", "search_explicit", "filter", "merge"}


def test_one_topic(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, topic_index, popular = world
    r = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=80),
        implicit=implicit_queries(k=3),
        explicit=explicit_queries([4]),
        topic_index=topic_index,
    )
    check_clean(r, 80)
    assert [s for s in r.sources if s.kind == EXPLICIT] == [Source(EXPLICIT, 4)]
    assert r.budgets.tolist()[-1] == 20  # 80 * 1/4


def test_no_followed_topics_is_implicit_only(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, topic_index, popular = world
    for explicit in (None, explicit_queries([])):
        r = plan_request(
            index=index,
            popular=popular,
            settings=PlanSettings(total=100),
            implicit=implicit_queries(),
            explicit=explicit,
            topic_index=topic_index,
        )
        check_clean(r, 100)
        assert {s.kind for s in r.sources} == {IMPLICIT}


def test_no_history_is_explicit_only(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, topic_index, popular = world
    im = implicit_queries()
    no_history = ImplicitQueries(im.embeddings, im.importance, np.zeros(7, dtype=bool))
    for implicit in (None, no_history):
        r = plan_request(
            index=index,
            popular=popular,
            settings=PlanSettings(total=100),
            implicit=implicit,
            explicit=explicit_queries([1, 2, 3]),
            topic_index=topic_index,
        )
        check_clean(r, 100)
        assert {s.kind for s in r.sources} == {EXPLICIT}
        assert r.budgets.tolist() == [34, 33, 33]


def test_neither_falls_back_to_popular(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, _topic_index, popular = world
    r = plan_request(index=index, popular=popular, settings=PlanSettings(total=50))
    check_clean(r, 50)
    assert r.sources == (Source(POPULAR, -1),)
    assert r.candidates.ids.tolist() == popular.ids[:50].tolist()
    assert str(r.records()[0].source) == "popular"


def test_unused_slots_are_not_searched(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, _, popular = world
    im = implicit_queries(k=4)
    importance = np.array([0.0, 2.0, 1.0, 3.0])
    mask = np.array([True, True, False, True])
    r = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=60),
        implicit=ImplicitQueries(im.embeddings, importance, mask),
    )
    check_clean(r, 60)
    assert r.sources == (Source(IMPLICIT, 3), Source(IMPLICIT, 1))
    assert r.budgets.tolist() == [36, 24]


def test_total_larger_than_corpus_returns_everything_once(
    world: tuple[ExactIndex, TopicIndex, Ranked],
) -> None:
    index, topic_index, popular = world
    r = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=5000, overfetch=0.0),
        implicit=implicit_queries(),
        explicit=explicit_queries([0, 1]),
        topic_index=topic_index,
    )
    assert len(r) == N_ITEMS
    assert (r.candidates.ids >= 0).all()


def test_global_topk_is_injectable_and_deterministic(
    world: tuple[ExactIndex, TopicIndex, Ranked],
) -> None:
    index, topic_index, popular = world
    kwargs = dict(
        index=index,
        popular=popular,
        settings=PlanSettings(total=120),
        implicit=implicit_queries(),
        explicit=explicit_queries([2, 3, 5]),
        topic_index=topic_index,
    )
    a = plan_request(**kwargs, merge=global_topk_merger)  # type: ignore[arg-type]
    b = plan_request(**kwargs, merge=global_topk_merger)  # type: ignore[arg-type]
    check_clean(a, 120)
    assert (np.diff(a.candidates.scores) <= 0).all()
    np.testing.assert_array_equal(a.candidates.ids, b.candidates.ids)


class CountingIndex:
    """Forwards to an index and counts its searches (and the rows searched)."""

    def __init__(self, inner: VectorIndex) -> None:
        self.inner = inner
        self.rows: list[int] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def size(self) -> int:
        return self.inner.size

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        raise NotImplementedError

    def save(self, directory: Any, *, model_version: str) -> Any:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int, *, depths: np.ndarray | None = None) -> Hits:
        self.rows.append(queries.shape[0])
        return self.inner.search(queries, k, depths=depths)


class TopicsOnly:
    """A TopicIndex seen only through the TopicSearcher protocol: nothing is shared, and
    its hits are not promised to carry their topic (no ``hits_in_topic``)."""

    def __init__(self, inner: TopicIndex) -> None:
        self.inner = inner
        self.item_topics = inner.item_topics

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> TopicHits:
        return self.inner.search(queries, topics, k)


@pytest.mark.parametrize("backend", ["exact", "hnsw"])
def test_huge_topics_share_the_implicit_search_and_change_nothing(
    world: tuple[ExactIndex, TopicIndex, Ranked], backend: str
) -> None:
    """Explicit rows the topic index sends to the item index join the implicit rows'
    call (one search in all), with the same result as searching them separately."""
    _, _, popular = world
    ids, x, it = world_arrays()
    inner: VectorIndex = ExactIndex(D)
    if backend == "hnsw":
        inner = FaissIndex(D, "HNSW32", ef_search=16, threads=1)
    inner.add(ids, x)
    index = CountingIndex(inner)
    routed = TopicIndex.build(ids, x, it, ann=index, exact_max_items=112, items_per_depth=0)
    sizes = np.diff(it.offsets)
    assert (sizes > 112).any()  # both routes are taken
    assert (sizes <= 112).any()
    kwargs = dict(
        index=index,
        popular=popular,
        settings=PlanSettings(total=150),
        implicit=implicit_queries(),
        explicit=explicit_queries(list(range(N_TOPICS))),
    )
    shared = plan_request(**kwargs, topic_index=routed)  # type: ignore[arg-type]
    calls_shared, index.rows = index.rows, []
    alone = plan_request(**kwargs, topic_index=TopicsOnly(routed))  # type: ignore[arg-type]
    n_ann = int(routed.ann_rows(explicit_queries(list(range(N_TOPICS))).topics, 150).sum())
    assert n_ann > 0
    assert sum(calls_shared) == sum(index.rows)  # the same rows are searched ...
    assert len(calls_shared) < len(index.rows)  # ... in fewer calls
    for field in ("budgets", "found", "filtered"):
        np.testing.assert_array_equal(getattr(shared, field), getattr(alone, field))
    for field in ("ids", "source", "rank", "hit_candidate", "hit_source", "hit_rank"):
        np.testing.assert_array_equal(
            getattr(shared.candidates, field), getattr(alone.candidates, field)
        )
    # BLAS may round a batch of 12 rows differently from one of 5 (exact backend)
    np.testing.assert_allclose(shared.candidates.scores, alone.candidates.scores, rtol=1e-6)
    assert shared.sources == alone.sources


class OffTopicSearcher:
    """A topic searcher that ignores topics: the relevance filter must catch it."""

    def __init__(self, index: ExactIndex, item_topics: ItemTopics) -> None:
        self.index = index
        self.item_topics = item_topics

    def search(self, queries: np.ndarray, topics: np.ndarray, k: int) -> TopicHits:
        hits: Hits = self.index.search(queries, k)
        q = queries.shape[0]
        zero = np.zeros(q, np.int64)
        return TopicHits(hits, np.ones(q, bool), np.full(q, k), zero, np.zeros(q, bool))


def test_relevance_filter_drops_and_counts_off_topic(
    world: tuple[ExactIndex, TopicIndex, Ranked],
) -> None:
    index, topic_index, popular = world
    searcher = OffTopicSearcher(index, topic_index.item_topics)
    ex = explicit_queries([0, 1, 2])
    r = plan_request(
        index=index,
        popular=popular,
        settings=PlanSettings(total=60, overfetch=0.5),
        explicit=ex,
        topic_index=searcher,
    )
    it = topic_index.item_topics
    for n in range(len(r)):
        topic = r.sources[int(r.candidates.source[n])].key
        assert it.contains(r.candidates.ids[n : n + 1], topic)[0]
    # first searched 30 deep (20 + ceil(0.5 * 20)); most hits are off-topic, so the
    # lists are searched deeper until each fills its budget of 20
    assert (r.depths > 30).all()
    assert (r.found + r.filtered == r.depths).all()
    assert r.filtered.sum() > 0
    assert len(r) == 60
    assert np.bincount(r.candidates.source).tolist() == [20, 20, 20]


def test_hits_in_topic_skip_the_filter_and_change_nothing(
    world: tuple[ExactIndex, TopicIndex, Ranked], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`TopicIndex` hits carry their topic: the plan takes them as the filter would
    leave them (it is not run), and serves what it serves through the filter."""
    index, topic_index, popular = world
    assert topic_index.hits_in_topic is True

    def plan(searcher: Any) -> Retrieval:
        return plan_request(
            index=index,
            popular=popular,
            settings=PlanSettings(total=90),
            implicit=implicit_queries(k=3),
            explicit=explicit_queries([0, 3, 5, 8]),
            topic_index=searcher,
        )

    filtered = plan(TopicsOnly(topic_index))

    def no_filter(*args: Any) -> None:
        raise AssertionError("the relevance filter ran")

    monkeypatch.setattr(search_module, "relevance_filter_rows", no_filter)
    trusted = plan(topic_index)
    for field in ("ids", "scores", "source", "rank", "hit_candidate", "hit_source"):
        np.testing.assert_array_equal(
            getattr(trusted.candidates, field), getattr(filtered.candidates, field)
        )
    np.testing.assert_array_equal(trusted.filtered, filtered.filtered)
    with pytest.raises(AssertionError, match="the relevance filter ran"):
        plan(TopicsOnly(topic_index))


def test_argument_errors(world: tuple[ExactIndex, TopicIndex, Ranked]) -> None:
    index, topic_index, popular = world
    s = PlanSettings(total=10)
    with pytest.raises(RetrievalInputError, match="topic_index must be a TopicSearcher"):
        plan_request(index=index, popular=popular, settings=s, explicit=explicit_queries([1]))
    bad = ImplicitQueries(np.zeros((3, D + 1)), np.ones(3), np.ones(3, bool))
    with pytest.raises(RetrievalInputError, match=r"implicit.embeddings must be a \[K_im, 8\]"):
        plan_request(index=index, popular=popular, settings=s, implicit=bad)
    bad = ImplicitQueries(np.zeros((3, D)), np.ones(3), np.ones(3))
    with pytest.raises(RetrievalInputError, match=r"slot_mask must be a \[3\] bool array"):
        plan_request(index=index, popular=popular, settings=s, implicit=bad)
    many = ExplicitQueries(np.arange(6), np.zeros((6, D)))
    with pytest.raises(RetrievalInputError, match=r"explicit.topics must be a \[T <= 5\]"):
        plan_request(
            index=index, popular=popular, settings=s, explicit=many, topic_index=topic_index
        )


def test_settings_collect_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        PlanSettings(total=0, floor=-1, implicit_share=1.5, overfetch=-0.1)
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "plan.total = 0: must be an int >= 1" in message
    assert "plan.floor = -1: must be an int >= 0" in message
    assert "plan.implicit_share = 1.5: must be None or in [0, 1]" in message
    assert "plan.overfetch = -0.1: must be in [0, 10]" in message


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 6), st.integers(1, 6)), min_size=1, max_size=5
    ),  # (real hits in the row, depth)
)
def test_cut_rows_to_their_depth_without_padding(rows: list[tuple[int, int]]) -> None:
    """`_cut` against `Hits.row` then a slice, the obvious (slower) way."""
    k = 6
    ids = np.full((len(rows), k), -1, dtype=np.int64)
    scores = np.full((len(rows), k), -np.inf, dtype=np.float32)
    for q, (n, _) in enumerate(rows):
        ids[q, :n] = np.arange(100 * q, 100 * q + n)
        scores[q, :n] = np.linspace(1.0, 0.5, n)
    hits = Hits(ids, scores)
    depths = np.array([d for _, d in rows], dtype=np.int64)
    got = _cut(hits, depths)
    for q, d in enumerate(depths.tolist()):
        want = hits.row(q)
        assert got[q].ids.tolist() == want.ids[:d].tolist()
        assert got[q].scores.tolist() == want.scores[:d].tolist()
