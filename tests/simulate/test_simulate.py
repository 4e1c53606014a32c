"""The simulation loop: paired arms, the shared ranking stage, provenance, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from multiembed.retrieve import PlanSettings
from multiembed.simulate import (
    KINDS,
    Arm,
    LegacyTopicSource,
    OracleSource,
    Population,
    RandomSource,
    SimLog,
    SimulationConfig,
    compare,
    load_population,
    simulate,
    user_metrics,
)

CFG = SimulationConfig(days=7, bootstrap=300)
PLAN = PlanSettings(total=60, k_ex=3)


@pytest.fixture(scope="module")
def population(sim_data: Path) -> Population:
    return load_population(sim_data, CFG)


@pytest.fixture(scope="module")
def run(population: Population) -> SimLog:
    arms = [
        Arm("random", (RandomSource(population, seed=1),), PLAN),
        Arm("random_again", (RandomSource(population, seed=1),), PLAN),
        Arm("oracle", (OracleSource(population),), PLAN),
        Arm("legacy", (LegacyTopicSource(population, seed=CFG.seed),), PLAN),
    ]
    return simulate(population, arms, CFG)


def rows(log: SimLog, arm: int) -> np.ndarray:
    m = log.arm == arm
    return np.stack((log.user[m], log.day[m], log.item[m], log.save[m]), axis=1)


def test_arms_with_the_same_retrieval_have_the_same_log(run: SimLog):
    np.testing.assert_array_equal(rows(run, 0), rows(run, 1))
    np.testing.assert_array_equal(run.impressions[0], run.impressions[1])


def test_identical_arms_give_a_lift_whose_interval_contains_zero(run, population):
    values = user_metrics(run, population.item_subtopic, population.n_users, CFG)
    for r in compare(values, population.cohort, CFG, control="random"):
        if r.arm == "random_again" and r.lift.lift is not None:
            assert r.lift.low <= 0.0 <= r.lift.high
            assert not r.lift.significant


def test_retrieving_the_true_interests_beats_random_items_significantly(run, population):
    values = user_metrics(run, population.item_subtopic, population.n_users, CFG)
    table = {
        (r.arm, r.metric, r.segment): r
        for r in compare(values, population.cohort, CFG, control="random")
    }
    for metric in ("saves", "adopted"):
        lift = table["oracle", metric, "all"].lift
        assert lift.significant, (metric, lift)
        assert lift.low > 0.0, (metric, lift)


def test_explicit_candidates_log_their_topic_and_only_they_do(run, population):
    explicit = run.kind == KINDS.index("explicit")
    legacy = run.arm == 3
    # the legacy arm has explicit lists only (users following nothing get the popular list)
    assert set(np.unique(run.kind[legacy])) <= {KINDS.index("explicit"), KINDS.index("popular")}
    assert explicit[legacy].mean() > 0.9
    assert not explicit[~legacy].any()
    np.testing.assert_array_equal(run.source_topic >= 0, explicit)
    # the logged topic is one the item carries (the legacy index is an inverted index)
    carries = population.item_topics[run.item[explicit]] == run.source_topic[explicit, None]
    assert carries.any(axis=1).all()


def test_no_item_is_shown_twice_to_a_user_in_one_arm(run):
    for a in range(len(run.arms)):
        pairs = rows(run, a)[:, [0, 2]]
        assert np.unique(pairs, axis=0).shape[0] == pairs.shape[0]


def test_sessions_are_the_same_in_every_arm_and_bound_the_pages(run):
    per_user = run.sessions.sum(axis=1)
    for a in range(len(run.arms)):
        assert (run.impressions[a] <= per_user * CFG.shown).all()
    assert (run.session < run.sessions[run.user, run.day]).all()
    assert (run.position < CFG.shown).all()


def test_the_ranking_stage_ignores_the_arms_own_scores(population):
    class Reversed:
        """The oracle's lists in reverse order: the same items, worst first."""

        kind, name = "implicit", "reversed"

        def __init__(self) -> None:
            self.oracle = OracleSource(population)

        def lists(self, request):
            out = self.oracle.lists(request)
            ids, scores = out.ids.copy(), out.scores.copy()
            for b in range(ids.shape[0]):
                for s in range(ids.shape[1]):
                    n = int((ids[b, s] >= 0).sum())
                    ids[b, s, :n] = ids[b, s, :n][::-1]
                    scores[b, s, :n] = np.sort(scores[b, s, :n])[::-1]
            return out._replace(ids=ids, scores=scores)

    cfg = SimulationConfig(days=2)
    plan = PlanSettings(total=5000)  # every list fits: the merge keeps the same items
    a = simulate(population, [Arm("a", (OracleSource(population),), plan)], cfg)
    b = simulate(population, [Arm("b", (Reversed(),), plan)], cfg)
    np.testing.assert_array_equal(rows(a, 0), rows(b, 0))


def test_the_simulation_is_deterministic_for_a_seed(population):
    arms = [Arm("legacy", (LegacyTopicSource(population, seed=0),), PLAN)]
    cfg = SimulationConfig(days=2)
    one, two = simulate(population, arms, cfg), simulate(population, arms, cfg)
    np.testing.assert_array_equal(rows(one, 0), rows(two, 0))
    other = simulate(population, arms, SimulationConfig(days=2, seed=1))
    assert rows(other, 0).shape != rows(one, 0).shape or (rows(other, 0) != rows(one, 0)).any()


def test_the_legacy_retriever_serves_any_depth_on_the_same_day(population):
    source = LegacyTopicSource(population, seed=0)
    topic = int(population.followed[0, 0])
    short = source.topic_list(topic, 3, 5)
    deep = source.topic_list(topic, 3, 40)
    assert short.size == 5
    assert deep.size == 40
    np.testing.assert_array_equal(deep[:5], short)
    assert source.topic_list(topic, 3, 5).size == 5
