"""The synthetic world: determinism, the logging policy's contract, and ground truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from multiembed.config.sections import SyntheticConfig
from multiembed.data.schema import ACTIONS, NEGATIVE_ACTIONS
from multiembed.data.synthetic import SyntheticAdapter, generate_world, write_ground_truth
from multiembed.data.synthetic._policy import simulate
from multiembed.data.synthetic._world import ZIPF_EXPONENT
from multiembed.errors import ConfigError

DAY = 86_400
TINY = SyntheticConfig(n_users=200, n_items=2000, seed=3)


def _tables(config: SyntheticConfig) -> dict[str, pa.Table]:
    raw = SyntheticAdapter(config).read()
    return {
        "items": pa.Table.from_batches(list(raw.items())),
        "engagements": pa.Table.from_batches(list(raw.engagements())),
        "user_topics": pa.Table.from_batches(list(raw.user_topics())),
    }


@pytest.fixture(scope="module")
def world() -> dict[str, pa.Table]:
    return _tables(TINY)


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pa.Table]:
    gt = write_ground_truth(TINY, tmp_path_factory.mktemp("prepared"))
    assert gt.name == "ground_truth"
    return {p.stem: pq.read_table(p) for p in gt.glob("*.parquet")}


def _np(table: pa.Table, column: str) -> np.ndarray:
    return np.asarray(table[column].to_numpy(zero_copy_only=False))


def _by_key(table: pa.Table, key: str, value: str) -> dict[int, int]:
    return dict(zip(table[key].to_pylist(), table[value].to_pylist(), strict=True))


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_batches(world: dict[str, pa.Table]) -> None:
    again = _tables(TINY)
    for name, table in world.items():
        assert table.equals(again[name]), name


def test_different_seed_gives_a_different_world(world: dict[str, pa.Table]) -> None:
    other = _tables(dataclasses.replace(TINY, seed=4))
    for name, table in world.items():
        assert not table.equals(other[name]), name


def test_a_larger_world_starts_with_the_same_users() -> None:
    small = SyntheticConfig(n_users=2000, n_items=500, n_topics=5)
    large = dataclasses.replace(small, n_users=2300)
    first_small = next(SyntheticAdapter(small).read().engagements())
    batches = list(SyntheticAdapter(large).read().engagements())
    assert len(batches) == 2
    assert first_small.equals(batches[0])
    rows = np.concatenate([b.column("_row").to_numpy() for b in batches])
    np.testing.assert_array_equal(rows, np.arange(len(rows)))


# --- raw tables -------------------------------------------------------------------------------


def test_raw_tables_carry_provenance_and_raw_types(world: dict[str, pa.Table]) -> None:
    for table in world.values():
        np.testing.assert_array_equal(_np(table, "_row"), np.arange(table.num_rows))
        assert pc.all(pc.equal(table["_file"], "synthetic")).as_py()
    eng = world["engagements"]
    assert eng.schema.field("source_topic").type == pa.int64()
    assert set(eng["action"].to_pylist()) <= set(ACTIONS)
    assert world["items"].num_rows == TINY.n_items


def test_timestamps_inside_the_window_and_sorted_per_user(world: dict[str, pa.Table]) -> None:
    eng = world["engagements"]
    user, ts = _np(eng, "user_id"), _np(eng, "ts")
    start = TINY.start_ts
    assert ts.min() >= start
    assert ts.max() < start + TINY.days * DAY
    assert (np.diff(user) >= 0).all()
    same_user = np.diff(user) == 0
    assert (np.diff(ts)[same_user] >= 0).all()
    keys = eng.select(["user_id", "item_id", "ts", "action"])
    assert keys.group_by(keys.column_names).aggregate([]).num_rows == eng.num_rows  # no repeats


def test_negative_actions_present_at_about_the_configured_share(
    world: dict[str, pa.Table],
) -> None:
    action = world["engagements"]["action"].to_pylist()
    share = np.mean([a in NEGATIVE_ACTIONS for a in action])
    assert share == pytest.approx(TINY.negative_action_share, abs=0.02)


def test_invalid_items_have_null_vectors(world: dict[str, pa.Table], truth: dict) -> None:
    items = world["items"]
    invalid = np.asarray(items["vector"].is_null())
    assert invalid.sum() == round(TINY.invalid_item_share * TINY.n_items)
    np.testing.assert_array_equal(~invalid, _np(truth["items"], "valid"))
    lengths = pc.list_value_length(items["vector"]).drop_null()
    assert set(lengths.to_pylist()) == {TINY.vector_dim}
    assert set(pc.list_value_length(items["categorical"]).to_pylist()) == {2}


def test_item_topics_are_subtopic_parent_and_maybe_a_secondary(
    world: dict[str, pa.Table], truth: dict
) -> None:
    raw = SyntheticAdapter(TINY).read()
    parents, names = raw.topic_parents, raw.topic_names
    gt = truth["items"]
    for topics, sub, top, sec in zip(
        world["items"]["topics"].to_pylist(),
        gt["subtopic"].to_pylist(),
        gt["topic"].to_pylist(),
        gt["secondary_topic"].to_pylist(),
        strict=True,
    ):
        assert topics[:2] == [top, sub]
        assert parents[str(sub)] == str(top)
        assert topics[2:] == ([] if sec is None else [sec])
        assert all(str(t) in names for t in topics)
    assert len(parents) == TINY.n_topics * TINY.subtopics_per_topic


def test_popularity_is_zipf_within_each_subtopic(truth: dict) -> None:
    gt = truth["items"]
    assert pc.sum(gt["popularity"]).as_py() == pytest.approx(1.0)
    for sub, pop in _group(_np(gt, "subtopic"), _np(gt, "popularity")):
        ranked = np.sort(pop)[::-1]
        expected = ranked[0] / np.arange(1, len(ranked) + 1) ** ZIPF_EXPONENT
        np.testing.assert_allclose(ranked, expected, rtol=1e-9, err_msg=str(sub))


def _group(keys: np.ndarray, values: np.ndarray) -> list[tuple[int, np.ndarray]]:
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return [
        (int(k[0]), v) for k, v in zip(np.split(keys, cuts), np.split(values, cuts), strict=True)
    ]


def test_item_vectors_cluster_by_subtopic(truth: dict) -> None:
    w = generate_world(TINY)
    v = w.items.vectors / np.linalg.norm(w.items.vectors, axis=1, keepdims=True)
    sub = w.items.subtopic
    sim = v[:400] @ v[:400].T
    same = sub[:400, None] == sub[None, :400]
    off_diag = ~np.eye(400, dtype=bool)
    assert sim[same & off_diag].mean() > sim[~same].mean() + 0.2


def test_too_few_items_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"synthetic.n_items = 10: must be >= .* \(96\)"):
        generate_world(SyntheticConfig(n_items=10))


# --- the logging policy -----------------------------------------------------------------------


def test_source_topic_only_on_legacy_engagements() -> None:
    w = generate_world(TINY)
    e = simulate(w, w.users(0), 0)
    assert e.legacy.any()
    assert (~e.legacy).any()
    np.testing.assert_array_equal(e.source_topic >= 0, e.legacy)


def test_source_topic_is_followed_at_engagement_time(world: dict[str, pa.Table]) -> None:
    follows: dict[tuple[int, int], list[tuple[int, int | None]]] = {}
    for row in world["user_topics"].to_pylist():
        follows.setdefault((row["user_id"], row["topic"]), []).append(
            (row["followed_at"], row["unfollowed_at"])
        )
    eng = world["engagements"].filter(pc.is_valid(world["engagements"]["source_topic"]))
    assert eng.num_rows > 0
    for u, t, ts in zip(
        eng["user_id"].to_pylist(),
        eng["source_topic"].to_pylist(),
        eng["ts"].to_pylist(),
        strict=True,
    ):
        spans = follows[(u, t)]
        assert any(a <= ts and (b is None or ts < b) for a, b in spans), (u, t, ts)


def test_some_follows_end_inside_the_window(world: dict[str, pa.Table]) -> None:
    ut = world["user_topics"]
    assert (_np(ut, "followed_at") < TINY.start_ts).mean() > 0.9
    ended = ut["unfollowed_at"].drop_null().to_numpy()
    assert len(ended) > 0
    assert ((ended >= TINY.start_ts) & (ended < TINY.start_ts + TINY.days * DAY)).all()


def test_home_feed_engagements_follow_true_interests(
    world: dict[str, pa.Table], truth: dict
) -> None:
    eng = world["engagements"]
    home_pos = eng.filter(
        pc.and_(pc.is_null(eng["source_topic"]), pc.invert(pc.equal(eng["action"], "hide")))
    )
    sub_of = _np(truth["items"], "subtopic")
    interests = set(
        zip(
            truth["user_interests"]["user_id"].to_pylist(),
            truth["user_interests"]["subtopic"].to_pylist(),
            strict=True,
        )
    )
    hits = [
        (u, int(sub_of[i - 1])) in interests
        for u, i in zip(
            home_pos["user_id"].to_pylist(), home_pos["item_id"].to_pylist(), strict=True
        )
    ]
    assert np.mean(hits) > 0.9
    hides = eng.filter(pc.equal(eng["action"], "hide"))
    hidden = [
        (u, int(sub_of[i - 1])) in interests
        for u, i in zip(hides["user_id"].to_pylist(), hides["item_id"].to_pylist(), strict=True)
    ]
    assert not any(hidden)  # users hide only items outside their interests


# --- users ------------------------------------------------------------------------------------


def test_interest_weights_are_head_torso_tail(truth: dict) -> None:
    ui = truth["user_interests"]
    assert set(_np(truth["users"], "user_id")) == set(_np(ui, "user_id"))
    total = ui.group_by("user_id").aggregate([("weight", "sum")])
    np.testing.assert_allclose(_np(total, "weight_sum"), 1.0)
    recent = ui.filter(pc.not_equal(ui["tier"], "long_term"))
    per_user = recent.group_by("user_id").aggregate([("weight", "max"), ("weight", "count")])
    assert _np(per_user, "weight_count").min() >= TINY.interests_min
    assert _np(per_user, "weight_count").max() <= TINY.interests_max
    head = recent.filter(pc.equal(recent["tier"], "head"))
    head_w = _by_key(head, "user_id", "weight")
    max_w = _by_key(per_user, "user_id", "weight_max")
    assert all(head_w[u] == max_w[u] for u in head_w)
    assert {"head", "torso", "tail", "long_term"} == set(ui["tier"].to_pylist())


def test_long_term_interest_is_followed_and_absent_from_the_home_feed(
    world: dict[str, pa.Table], truth: dict
) -> None:
    users = truth["users"].filter(pc.is_valid(truth["users"]["long_term_subtopic"]))
    assert users.num_rows > 0.5 * TINY.long_term_share * TINY.n_users
    lt_topic = _by_key(users, "user_id", "long_term_topic")
    lt_sub = _by_key(users, "user_id", "long_term_subtopic")

    followed = truth["followed"]
    forever = followed.filter(pc.is_null(followed["unfollowed_at"]))
    pairs = set(zip(forever["user_id"].to_pylist(), forever["topic"].to_pylist(), strict=True))
    assert all((u, t) in pairs for u, t in lt_topic.items())

    eng = world["engagements"]
    items = truth["items"]
    topic_of, sub_of = _np(items, "topic"), _np(items, "subtopic")
    via_legacy = set()
    for u, i, src in zip(
        eng["user_id"].to_pylist(),
        eng["item_id"].to_pylist(),
        eng["source_topic"].to_pylist(),
        strict=True,
    ):
        if u not in lt_topic:
            continue
        if src is None:  # home feed: never the long-term topic, let alone its sub-topic
            assert topic_of[i - 1] != lt_topic[u], (u, i)
        elif sub_of[i - 1] == lt_sub[u]:
            via_legacy.add(u)
    assert len(via_legacy) > 0.1 * users.num_rows


def test_new_and_low_activity_users(world: dict[str, pa.Table], truth: dict) -> None:
    segment = _by_key(truth["users"], "user_id", "segment")
    counts = dict.fromkeys(segment, 0)
    last_day = TINY.start_ts + (TINY.days - 1) * DAY
    eng = world["engagements"]
    for u, ts in zip(eng["user_id"].to_pylist(), eng["ts"].to_pylist(), strict=True):
        counts[u] += 1
        if segment[u] == "new":
            assert ts >= last_day
    new = [counts[u] for u, s in segment.items() if s == "new"]
    low = [counts[u] for u, s in segment.items() if s == "low_activity"]
    active = [counts[u] for u, s in segment.items() if s == "active"]
    assert 0 in new  # some new users have not engaged yet
    assert min(new) >= 0
    assert min(low) >= 1
    assert max(low) <= 4
    assert np.mean(active) > 10 * np.mean(low)

    follows = truth["followed"]
    new_follows = follows.filter(pc.is_in(follows["user_id"], pa.array(_ids(segment, "new"))))
    assert set(new_follows["user_id"].to_pylist()) == set(_ids(segment, "new"))
    assert (_np(new_follows, "followed_at") >= last_day).all()


def _ids(segment: dict[int, str], name: str) -> list[int]:
    return [u for u, s in segment.items() if s == name]


def test_followed_topics_mostly_match_interests(world: dict[str, pa.Table], truth: dict) -> None:
    followed = truth["followed"]
    ut = world["user_topics"]
    columns = ["user_id", "topic", "followed_at", "unfollowed_at"]
    assert followed.select(columns).to_pydict() == ut.select(columns).to_pydict()
    ui = truth["user_interests"]
    interest_topics = set(zip(ui["user_id"].to_pylist(), ui["topic"].to_pylist(), strict=True))
    matching = [
        (u, t) in interest_topics
        for u, t in zip(followed["user_id"].to_pylist(), followed["topic"].to_pylist(), strict=True)
    ]
    assert 0.7 < np.mean(matching) < 1.0  # mostly interests, some noise
    assert all(
        str(t) in SyntheticAdapter(TINY).read().topic_names for t in set(ut["topic"].to_pylist())
    )


def test_ground_truth_files(tmp_path: Path) -> None:
    adapter = SyntheticAdapter(TINY)
    gt = adapter.write_ground_truth(tmp_path)
    names = sorted(p.name for p in gt.iterdir())
    assert names == [
        "followed.parquet",
        "items.parquet",
        "topics.parquet",
        "user_interests.parquet",
        "users.parquet",
    ]
    topics = pq.read_table(gt / "topics.parquet")
    assert topics.num_rows == TINY.n_topics * (1 + TINY.subtopics_per_topic)
    assert pq.read_table(gt / "users.parquet").num_rows == TINY.n_users
