"""Saves, adopted topics and bootstrap lifts against hand-computed cases."""

from __future__ import annotations

import numpy as np

from multiembed.simulate import (
    SimLog,
    SimulationConfig,
    adopted_topics,
    bootstrap_lift,
    compare,
    user_metrics,
)
from multiembed.simulate._metrics import resample_counts, segment_masks


def test_a_topic_is_adopted_with_three_saves_inside_one_week():
    # user 0: sub-topic 5 saved on days 0, 3, 6 (week 0) -> adopted;
    #         sub-topic 6 saved on days 5, 6, 7 (2 in week 0, 1 in week 1) -> not;
    #         sub-topic 7 saved 3 times in week 1 and 3 in week 2 -> adopted once
    # user 1: two saves of sub-topic 5 -> nothing
    user = np.array([0, 0, 0, 0, 0, 0] + [0] * 6 + [1, 1])
    day = np.array([0, 3, 6, 5, 6, 7, 7, 8, 13, 14, 15, 20, 1, 2])
    sub = np.array([5, 5, 5, 6, 6, 6] + [7] * 6 + [5, 5])
    assert adopted_topics(user, day, sub, n_users=2, min_saves=3).tolist() == [2, 0]
    assert adopted_topics(user, day, sub, n_users=2, min_saves=2).tolist() == [3, 1]


def _log(arm, user, day, item, save, arms=("control", "treatment")) -> SimLog:
    n = len(user)
    z = np.zeros(n, dtype=np.int64)
    return SimLog(
        arms=arms,
        arm=np.array(arm),
        user=np.array(user),
        day=np.array(day),
        session=z,
        position=z,
        item=np.array(item),
        save=np.array(save, dtype=bool),
        kind=z,
        source_topic=z - 1,
        impressions=np.zeros((len(arms), 3), np.int64),
        sessions=np.zeros((3, 14), np.int64),
    )


def test_user_metrics_count_saves_per_arm_and_ignore_clicks():
    item_subtopic = np.array([10, 10, 11])
    log = _log(
        arm=[0, 0, 0, 0, 1, 1],
        user=[0, 0, 0, 1, 0, 2],
        day=[0, 1, 2, 0, 0, 3],
        item=[0, 1, 0, 2, 2, 2],
        save=[True, True, True, False, True, True],
    )
    m = user_metrics(log, item_subtopic, 3, SimulationConfig())
    assert m["control"]["saves"].tolist() == [3, 0, 0]
    assert m["control"]["adopted"].tolist() == [1, 0, 0]
    assert m["treatment"]["saves"].tolist() == [1, 0, 1]
    assert m["treatment"]["adopted"].tolist() == [0, 0, 0]


def test_resample_counts_draw_n_users_per_resample():
    counts = resample_counts(7, 50, 0, 3)
    assert counts.shape == (50, 7)
    assert (counts.sum(axis=1) == 7).all()
    np.testing.assert_array_equal(counts, resample_counts(7, 50, 0, 3))


def test_bootstrap_lift_matches_a_numpy_loop():
    rng = np.random.default_rng(0)
    c = rng.poisson(3.0, 40).astype(float)
    t = c + rng.poisson(1.0, 40)
    counts = resample_counts(40, 200, 1, 0)
    got = bootstrap_lift(c, t, counts, 0.9)
    ratios = []
    for r in range(200):
        idx = np.repeat(np.arange(40), counts[r])
        ratios.append(t[idx].sum() / c[idx].sum() - 1.0)
    assert got.lift == t.sum() / c.sum() - 1.0
    assert np.isclose(got.low, np.percentile(ratios, 5.0))
    assert np.isclose(got.high, np.percentile(ratios, 95.0))
    assert got.significant


def test_identical_arms_give_a_zero_lift_whose_interval_contains_zero():
    c = np.array([0.0, 1.0, 5.0, 2.0])
    got = bootstrap_lift(c, c.copy(), resample_counts(4, 100, 0, 0), 0.95)
    assert got.lift == 0.0
    assert got.low <= 0.0 <= got.high
    assert not got.significant


def test_noise_around_zero_is_not_significant():
    rng = np.random.default_rng(5)
    c = rng.poisson(4.0, 300).astype(float)
    t = rng.poisson(4.0, 300).astype(float)
    got = bootstrap_lift(c, t, resample_counts(300, 500, 0, 0), 0.95)
    assert got.low < 0.0 < got.high
    assert not got.significant


def test_a_control_without_saves_has_no_lift():
    got = bootstrap_lift(np.zeros(3), np.ones(3), resample_counts(3, 20, 0, 0), 0.95)
    assert got.lift is None
    assert not got.significant


def test_compare_reads_each_segment_on_its_own_users():
    cohort = np.array([0, 0, 1, 4])  # core, core, casual, new
    values = {
        "control": {"saves": np.array([2, 2, 1, 1]), "adopted": np.array([1, 1, 0, 0])},
        "b": {"saves": np.array([2, 2, 2, 3]), "adopted": np.array([1, 1, 0, 1])},
    }
    rows = {
        (r.metric, r.segment): r
        for r in compare(values, cohort, SimulationConfig(), control="control")
    }
    assert rows["saves", "all"].lift.lift == 9 / 6 - 1
    assert rows["saves", "core"].lift.lift == 0.0
    assert rows["saves", "non_core"].lift.lift == 5 / 2 - 1
    assert rows["saves", "new"].users == 1
    assert rows["saves", "new"].lift.lift == 2.0
    assert rows["adopted", "non_core"].lift.lift is None  # the control adopted nothing there
    assert rows["saves", "marginal"].users == 0
    assert rows["saves", "casual"].control_mean == 1.0
    assert rows["saves", "casual"].arm_mean == 2.0


def test_segments_partition_the_non_core_users():
    cohort = np.arange(5).repeat(3)
    m = segment_masks(cohort)
    parts = sum(m[s].astype(int) for s in ("casual", "marginal", "resurrected", "new"))
    np.testing.assert_array_equal(parts, m["non_core"].astype(int))
    assert not (m["core"] & m["non_core"]).any()
    assert (m["core"] | m["non_core"]).all()
