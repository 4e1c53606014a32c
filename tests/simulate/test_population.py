"""The population read from a prepared world, and the cohort definitions on hand-built logs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from multiembed.data import Vocab
from multiembed.data.prepared import read_prepared_table
from multiembed.errors import InputFileError
from multiembed.simulate import COHORTS, SimulationConfig, cohorts, load_population
from multiembed.simulate._population import DAY, tiny_population

CFG = SimulationConfig()


def names(codes: np.ndarray) -> list[str]:
    return [COHORTS[c] for c in codes]


def test_core_needs_more_than_four_saves_in_28_days():
    start = 40 * DAY
    # user 0: 4 saves (not core); user 1: 5 saves (core); user 2: 5 saves, one 29 days ago
    user = np.array([0] * 4 + [1] * 5 + [2] * 5)
    ts = np.array([30, 31, 32, 33, 30, 31, 32, 33, 34, 11, 31, 32, 33, 34]) * DAY
    ones = np.ones(user.size, dtype=bool)
    codes = cohorts(user, ts, ones, ones, n_users=3, start=start, new=np.zeros(3, bool), config=CFG)
    assert names(codes) == ["casual", "core", "casual"]


def test_clicks_do_not_make_a_user_core():
    user = np.zeros(10, dtype=np.int64)
    ts = np.arange(10) * DAY
    save = np.arange(10) < 4
    codes = cohorts(
        user,
        ts,
        save,
        np.ones(10, bool),
        n_users=1,
        start=12 * DAY,
        new=np.zeros(1, bool),
        config=CFG,
    )
    assert names(codes) == ["casual"]


def test_non_core_cohorts():
    start = 28 * DAY
    user = np.array([0, 0, 1, 1, 2, 3, 5])
    ts = np.array([1, 25, 3, 10, 26, 27, 2]) * DAY
    positive = np.array([True, True, True, True, True, True, False])
    new = np.array([False, False, False, True, False, False])
    codes = cohorts(
        user, ts, np.zeros(7, bool), positive, n_users=6, start=start, new=new, config=CFG
    )
    # 0: two days incl. the last week; 1: two days, none in the last week; 2: one day;
    # 3: new (precedence over activity); 4: never engaged; 5: only a negative action
    assert names(codes) == ["casual", "resurrected", "marginal", "new", "marginal", "marginal"]


def test_engagements_after_the_start_do_not_count():
    user = np.zeros(6, dtype=np.int64)
    ts = np.array([30, 31, 32, 33, 34, 0]) * DAY  # the last: 29 days before the start
    ones = np.ones(6, dtype=bool)
    codes = cohorts(
        user, ts, ones, ones, n_users=1, start=29 * DAY, new=np.zeros(1, bool), config=CFG
    )
    assert names(codes) == ["marginal"]


def test_true_interest_follows_the_worlds_acceptance_rule():
    pop = tiny_population()
    cfg = SimulationConfig(sibling_interest=0.3, stranger_interest=0.01)
    got = pop.true_interest(np.array([0, 1]), np.array([[0, 1, 2], [0, 1, 2]]), cfg)
    np.testing.assert_allclose(got, [[1.0, 0.3, 0.01], [0.01, 0.01, 1.0]])


def test_load_population_joins_ground_truth_through_the_vocabularies(sim_data: Path):
    pop = load_population(sim_data, CFG)
    users = Vocab.load(sim_data / "vocab" / "users.parquet")
    assert pop.n_users == len(users)
    np.testing.assert_allclose(pop.interest.sum(axis=1), 1.0)
    # every item's sub-topic is one of its own topics
    assert (pop.item_topics == pop.item_subtopic[:, None]).any(axis=1).all()
    assert (pop.item_topics == pop.item_topic[:, None]).any(axis=1).all()
    # history: the user's last positive engagements, in time order
    e = read_prepared_table(sim_data, "engagements.parquet")
    u = e.column("user_id").to_numpy()
    positive = np.asarray(pc.is_in(e.column("action"), pa.array(["click", "save"])).to_numpy())
    for user in (0, 5, 17):
        rows = np.flatnonzero((u == user) & positive)
        rows = rows[np.argsort(e.column("ts").to_numpy()[rows], kind="stable")]
        expected = e.column("item_id").to_numpy()[rows][-CFG.history_len :]
        got = pop.history[user]
        np.testing.assert_array_equal(got[got >= 0], expected)
    assert set(np.unique(pop.cohort)) <= set(range(len(COHORTS)))
    assert (pop.rate >= CFG.min_sessions_per_day).all()


def test_a_data_directory_without_ground_truth_is_a_clear_error(sim_data: Path, tmp_path: Path):
    copy = tmp_path / "data"
    shutil.copytree(sim_data, copy)
    shutil.rmtree(copy / "ground_truth")
    with pytest.raises(
        InputFileError, match=r"ground_truth.*missing.*synthetic world's ground truth"
    ):
        load_population(copy, CFG)
