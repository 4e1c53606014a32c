"""The plan's budgets and first depths on a hand-computed request."""

from __future__ import annotations

import numpy as np

from multiembed.retrieve import PlanSettings, first_depths, plan_budgets


def test_budgets_and_depths_of_a_hand_computed_request() -> None:
    # 3 used implicit slots and 2 topics: implicit gets round(20 * 3 / 5) = 12, explicit 8.
    # Implicit shares 12 * [.6, .3, .1] = [7.2, 3.6, 1.2]: slot 3 is lifted to the floor 3,
    # the other 9 re-shared as 9 * [.6, .3] / .9 = [6, 3]. Explicit: 8 / 2 = [4, 4].
    # Lists in round-robin order: slots by importance (0, 2, 3), then topic rows (0, 1).
    # First depths: budget + ceil(0.2 * budget).
    settings = PlanSettings(total=20, floor=3, overfetch=0.2)
    plan = plan_budgets(
        settings,
        importance=np.array([0.6, 0.0, 0.3, 0.1]),
        slot_mask=np.array([True, True, True, True]),
        n_topics=2,
    )
    assert plan.slots.tolist() == [0, 2, 3]
    assert plan.rows.tolist() == [0, 1]
    assert plan.budgets.tolist() == [6, 3, 3, 4, 4]
    assert first_depths(plan.budgets, settings.overfetch).tolist() == [8, 4, 4, 5, 5]
