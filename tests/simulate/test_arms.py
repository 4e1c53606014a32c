"""An arm's sources: several explicit sources share the explicit budget; one implicit at most."""

from __future__ import annotations

import numpy as np
import pytest

from multiembed.errors import ConfigError
from multiembed.index import Ranked
from multiembed.retrieve import PlanSettings
from multiembed.simulate import KINDS, Arm, DayRequest, SourceLists, serve_day


class Fixed:
    """An explicit source whose list for topic ``t`` is ``base + 10 t + 0..depth-1``."""

    kind = "explicit"

    def __init__(self, name: str, base: int) -> None:
        self.name, self.base = name, base

    def lists(self, request: DayRequest) -> SourceLists:
        b, s = request.topics.shape
        w = request.depth
        ids = self.base + 10 * request.topics[:, :, None] + np.arange(w)[None, None, :]
        scores = np.broadcast_to(-np.arange(w, dtype=np.float32), (b, s, w)).copy()
        return SourceLists(ids.astype(np.int64), scores, np.zeros((b, s)), request.topics.copy())


class Implicit(Fixed):
    kind = "implicit"


def request() -> DayRequest:
    return DayRequest(
        users=np.array([0]),
        day=0,
        history=np.full((1, 4), -1),
        topics=np.array([[1, 2]]),
        depth=12,
    )


def test_two_explicit_sources_split_the_explicit_budget_equally():
    arm = Arm("both", (Fixed("legacy", 0), Fixed("cr", 1000)), PlanSettings(total=8, k_ex=2))
    served = serve_day(arm, request(), Ranked(np.arange(50), np.zeros(50)), [np.zeros(0, int)])[0]
    # four lists (2 sources x 2 topics), 2 candidates each, merged round-robin
    assert sorted(served.ids.tolist()) == [10, 11, 20, 21, 1010, 1011, 1020, 1021]
    assert set(served.kind.tolist()) == {KINDS.index("explicit")}
    topic_of = {i: t for i, t in zip(served.ids.tolist(), served.topic.tolist(), strict=True)}
    assert topic_of[1020] == 2
    assert topic_of[11] == 1


def test_seen_items_leave_every_explicit_source_list():
    arm = Arm("both", (Fixed("legacy", 0), Fixed("cr", 1000)), PlanSettings(total=8, k_ex=2))
    seen = [np.array([10, 1010, 1020])]
    served = serve_day(arm, request(), Ranked(np.arange(50), np.zeros(50)), seen)[0]
    assert not set(served.ids.tolist()) & {10, 1010, 1020}
    assert served.ids.size == 8


def test_two_implicit_sources_in_one_arm_are_refused_by_name():
    with pytest.raises(
        ConfigError, match=r"arm 'x': at most one implicit source per arm, got a, b"
    ):
        Arm("x", (Implicit("a", 0), Implicit("b", 5)))
