"""Topic-restricted search: exact blocks, ANN with a deepening post-filter, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multiembed.index import (
    ExactIndex,
    FaissIndex,
    IndexInputError,
    IndexIntegrityError,
    ItemTopics,
    TopicIndex,
    read_manifest,
)
from multiembed.index._store import write_manifest

D = 8


def world(
    seed: int = 0, n: int = 600, topics: int = 12
) -> tuple[np.ndarray, np.ndarray, ItemTopics]:
    """Items with 1-3 topics each (topic 0 is huge: every third item), unit vectors."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(10**9, size=n, replace=False).astype(np.int64)
    x = rng.standard_normal((n, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pair_items, pair_topics = [], []
    for i, item in enumerate(ids):
        for t in rng.choice(np.arange(1, topics), size=rng.integers(1, 4), replace=False):
            pair_items.append(item)
            pair_topics.append(t)
        if i % 3 == 0:
            pair_items.append(item)
            pair_topics.append(0)
    return ids, x, ItemTopics.from_pairs(np.array(pair_items), np.array(pair_topics))


def reference(ids: np.ndarray, x: np.ndarray, members: set[int], query: np.ndarray, k: int) -> list:
    """Brute force over the topic's members: score descending, id ascending."""
    scored = [(float(x[i] @ query), int(ids[i])) for i in range(ids.size) if int(ids[i]) in members]
    scored.sort(key=lambda p: (-p[0], p[1]))
    return [item for _, item in scored[:k]]


def test_item_topics_blocks_and_membership() -> None:
    it = ItemTopics.from_pairs(np.array([5, 3, 5, 9, 3]), np.array([1, 1, 2, 1, 1]))
    assert it.topics.tolist() == [1, 2]
    assert it.members(1).tolist() == [3, 5, 9]  # repeated pair (3, 1) counted once
    assert it.members(2).tolist() == [5]
    assert it.size_of(1) == 3
    assert it.size_of(4) == 0
    assert it.contains(np.array([9, 5, 4]), 1).tolist() == [True, True, False]
    with pytest.raises(IndexInputError, match=r"two \[M\] integer arrays"):
        ItemTopics.from_pairs(np.array([1, 2]), np.array([1]))


def test_blocks_match_block_one_topic_at_a_time() -> None:
    _, _, it = world()
    topics = np.array([0, 11, 99, -3, 5, 5, 12, 1])  # known, unknown, repeated
    starts, stops = it.blocks(topics)
    assert [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)] == [
        it.block(int(t)) for t in topics
    ]
    empty = ItemTopics(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64))
    assert [a.tolist() for a in empty.blocks(np.array([3, 4]))] == [[0, 0], [0, 0]]


def test_exact_blocks_match_brute_force() -> None:
    ids, x, it = world()
    index = TopicIndex.build(ids, x, it)
    assert index.size == it.items.size  # an item appears once per topic it carries
    rng = np.random.default_rng(1)
    topics = np.array([0, 1, 5, 11, 5])
    queries = rng.standard_normal((topics.size, D)).astype(np.float32)
    res = index.search(queries, topics, k=7)
    assert not res.ann.any()
    assert (res.filtered == 0).all()
    assert (res.depth == 0).all()
    for q, t in enumerate(topics):
        want = reference(ids, x, set(it.members(int(t)).tolist()), queries[q], 7)
        assert res.hits.row(q).ids.tolist() == want


def test_unknown_topic_and_small_topic_pad() -> None:
    ids, x, it = world()
    index = TopicIndex.build(ids, x, it)
    res = index.search(np.ones((2, D)), np.array([99, 3]), k=it.size_of(3) + 5)
    assert res.hits.row(0).ids.size == 0
    assert res.hits.row(1).ids.size == it.size_of(3)
    assert (res.hits.ids[1, it.size_of(3) :] == -1).all()


def test_ann_route_with_exact_ann_equals_exact_blocks_and_counts_filtered() -> None:
    """With an exact 'ANN', deepening until k in-topic hits gives the exact answer, and
    `filtered` is the number of off-topic items ranked above the k-th in-topic one."""
    ids, x, it = world()
    ann = ExactIndex(D)
    ann.add(ids, x)
    k = 10
    routed = TopicIndex.build(ids, x, it, ann=ann, exact_max_items=50, growth=2, items_per_depth=0)
    blocks = TopicIndex.build(ids, x, it)
    rng = np.random.default_rng(2)
    topics = np.arange(12)
    queries = rng.standard_normal((12, D)).astype(np.float32)
    got, want = routed.search(queries, topics, k), blocks.search(queries, topics, k)
    np.testing.assert_array_equal(got.hits.ids, want.hits.ids)
    full = ann.search(queries, ann.size)
    assert not got.fallback.any()  # every topic here is >= 1/6 of the corpus
    for q, t in enumerate(topics):
        assert got.ann[q] == (it.size_of(int(t)) > 50)
        if got.ann[q]:
            inside = it.contains(full.ids[q], int(t))
            kth = int(np.flatnonzero(inside)[k - 1])
            assert got.filtered[q] == kth + 1 - k
            assert got.depth[q] >= kth + 1
            assert got.depth[q] in {2 * k * 2**g for g in range(8)}


def test_ann_falls_back_to_an_exact_scan_beyond_max_depth() -> None:
    ids, x, it = world()
    ann = ExactIndex(D)
    ann.add(ids, x)
    index = TopicIndex.build(
        ids, x, it, ann=ann, exact_max_items=1, max_depth=20, items_per_depth=0
    )
    blocks = TopicIndex.build(ids, x, it)
    q = np.random.default_rng(3).standard_normal((4, D)).astype(np.float32)
    topics = np.array([7, 3, 0, 9])
    res = index.search(q, topics, k=15)
    assert res.ann.all()
    assert res.fallback.all()
    assert (res.depth == 20).all()
    np.testing.assert_array_equal(res.hits.ids, blocks.search(q, topics, 15).hits.ids)
    top20 = ann.search(q, 20)
    for r, t in enumerate(topics):  # the off-topic hits seen before giving up
        assert res.filtered[r] == 20 - int(it.contains(top20.ids[r], int(t)).sum())


def test_ann_gives_up_early_when_the_query_misses_its_topic() -> None:
    """Items on a circle, topic 1 = a narrow arc, the query opposite: the first pass
    finds nothing in topic, so the index scans the block at once (not at the cap)."""
    angle = np.linspace(0, 2 * np.pi, 1000, endpoint=False)
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    ids = np.arange(1000, dtype=np.int64)
    arc = ids[angle < 0.5]
    it = ItemTopics.from_pairs(
        np.concatenate([arc, ids]), np.r_[np.ones(arc.size), np.zeros(1000)].astype(np.int64)
    )
    ann = ExactIndex(2)
    ann.add(ids, x)
    index = TopicIndex.build(
        ids, x, it, ann=ann, exact_max_items=1, max_depth=1000, items_per_depth=0
    )
    res = index.search(np.array([[-1.0, 0.0]]), np.array([1]), k=20)
    assert res.fallback[0]
    assert res.depth[0] == 40
    assert res.filtered[0] == 40
    blocks = TopicIndex.build(ids, x, it)
    want = blocks.search(np.array([[-1.0, 0.0]]), np.array([1]), k=20)
    np.testing.assert_array_equal(res.hits.ids, want.hits.ids)
    matching = index.search(np.array([[1.0, 0.1]]), np.array([1]), k=20)
    assert not matching.fallback[0]
    assert matching.depth[0] == 40


def test_hnsw_route_for_a_matching_query() -> None:
    ids, x, it = world(n=3000)
    ann = FaissIndex(D, "HNSW32", ef_search=64, threads=1)
    ann.add(ids, x)
    index = TopicIndex.build(ids, x, it, ann=ann, exact_max_items=500, items_per_depth=0)
    members = it.members(0)
    # a query near a member of huge topic 0: the ANN route finds in-topic items
    pos = np.searchsorted(np.sort(ids), members[:5])
    query = x[np.argsort(ids)[pos]]
    res = index.search(query, np.zeros(5, dtype=np.int64), k=20)
    assert res.ann.all()
    for q in range(5):
        row = res.hits.row(q)
        assert row.ids.size == 20
        assert it.contains(row.ids, 0).all()
        assert row.ids[0] == members[q]


def test_first_ann_search_done_by_the_caller_changes_nothing() -> None:
    """`ann_rows` / `ann_depth` say what to search; `search(ann_hits=...)` starts there."""
    ids, x, it = world(n=3000)
    ann = FaissIndex(D, "HNSW32", ef_search=64, threads=1)
    ann.add(ids, x)
    index = TopicIndex.build(
        ids, x, it, ann=ann, exact_max_items=550, max_depth=100, items_per_depth=0
    )
    topics = np.array([3, 0, 5, 0, 11])
    rows = index.ann_rows(topics, 20)
    assert rows.tolist() == [it.size_of(int(t)) > 550 for t in topics]
    assert rows.any()
    assert not rows.all()
    assert index.ann_depth(20) == 40  # 2k
    assert index.ann_depth(80) == 100  # capped at max_depth
    assert TopicIndex.build(ids, x, it).ann_depth(20) == 0  # no ANN index: no ANN rows
    q = np.random.default_rng(5).standard_normal((5, D)).astype(np.float32)
    want = index.search(q, topics, 20)
    first = ann.search(q[rows], 50)  # deeper than needed is fine
    got = index.search(q, topics, 20, ann_hits=first)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(
        IndexInputError, match=r"ann_hits must be Hits \[4, >= 40\] of the ANN rows, got \[4, 39\]"
    ):
        index.search(q, topics, 20, ann_hits=ann.search(q[rows], 39))


def test_topics_go_to_the_ann_index_only_where_a_scan_would_cost_more() -> None:
    """A topic takes the ANN route when it holds more than `exact_max_items` items and
    more than `items_per_depth` items per unit of the first ANN depth (2k): at a
    larger k the walk goes deeper, and more topics are cheaper to scan."""
    ids, x, it = world()
    ann = ExactIndex(D)
    ann.add(ids, x)
    index = TopicIndex.build(ids, x, it, ann=ann, exact_max_items=1, items_per_depth=3)
    topics = np.arange(12)
    sizes = np.array([it.size_of(int(t)) for t in topics])  # topic 0: 200, others ~100
    for k, floor in ((5, 30), (20, 120), (40, 240)):
        rows = index.ann_rows(topics, k)
        assert rows.tolist() == (sizes > floor).tolist()
        assert [index.uses_ann(int(t), k) for t in topics] == rows.tolist()
        q = np.random.default_rng(k).standard_normal((12, D)).astype(np.float32)
        assert index.search(q, topics, k).ann.tolist() == rows.tolist()
    assert index.ann_rows(topics, 5).all()  # every topic here holds more than 30 ...
    assert index.ann_rows(topics, 20).tolist() == [True] + [False] * 11  # ... one than 120
    assert not index.ann_rows(topics, 40).any()
    by_size = TopicIndex.build(ids, x, it, ann=ann, exact_max_items=150, items_per_depth=0)
    assert by_size.ann_rows(topics, 40).tolist() == (sizes > 150).tolist()
    assert not TopicIndex.build(ids, x, it, items_per_depth=0).ann_rows(topics, 5).any()


def test_save_load_and_refusals(tmp_path: Path) -> None:
    ids, x, it = world()
    index = TopicIndex.build(
        ids, x, it, exact_max_items=77, growth=3, max_depth=99, items_per_depth=5
    )
    index.save(tmp_path / "t", model_version="m1")
    loaded = TopicIndex.load(tmp_path / "t", expected_model_version="m1")
    assert (loaded.exact_max_items, loaded.growth, loaded.max_depth) == (77, 3, 99)
    assert loaded.items_per_depth == 5
    q = np.random.default_rng(4).standard_normal((3, D)).astype(np.float32)
    topics = np.array([0, 4, 8])
    np.testing.assert_array_equal(
        loaded.search(q, topics, 5).hits.ids, index.search(q, topics, 5).hits.ids
    )
    with pytest.raises(IndexIntegrityError, match="expected 'm2', got 'm1'"):
        TopicIndex.load(tmp_path / "t", expected_model_version="m2")
    victim = tmp_path / "t" / "items.npy"
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0x80
    victim.write_bytes(bytes(raw))
    with pytest.raises(IndexIntegrityError, match=r"items\.npy: SHA-256 differs"):
        TopicIndex.load(tmp_path / "t", expected_model_version="m1")


def test_argument_errors() -> None:
    ids, x, it = world()
    with pytest.raises(IndexInputError, match="a vector for every item that carries a topic"):
        TopicIndex.build(ids[1:], x[1:], it)
    with pytest.raises(IndexInputError, match=r"one row per \(item, topic\) pair"):
        TopicIndex(it, x)
    index = TopicIndex.build(ids, x, it)
    with pytest.raises(IndexInputError, match=r"topics must be a \[2\] int array"):
        index.search(np.ones((2, D)), np.array([1]), k=3)
    with pytest.raises(IndexInputError, match="ann must be an index of dim 8, got 4"):
        TopicIndex.build(ids, x, it, ann=ExactIndex(4))
    with pytest.raises(IndexInputError, match="growth must be an int >= 2, got 1"):
        TopicIndex.build(ids, x, it, growth=1)
    with pytest.raises(IndexInputError, match="items_per_depth must be an int >= 0, got -1"):
        TopicIndex.build(ids, x, it, items_per_depth=-1)


def test_an_index_saved_before_items_per_depth_routes_by_size_alone(tmp_path: Path) -> None:
    ids, x, it = world()
    TopicIndex.build(ids, x, it).save(tmp_path / "t", model_version="m1")
    manifest = read_manifest(tmp_path / "t")
    del manifest.params["items_per_depth"]  # as an earlier release wrote it
    write_manifest(tmp_path / "t", manifest)
    loaded = TopicIndex.load(tmp_path / "t", expected_model_version="m1")
    assert loaded.items_per_depth == 0
