"""Candidate sources of an arm: what proposes items before the merge.

A source returns, for a batch of ``B`` users on one day, ``S`` ranked lists per
user (`SourceLists`). An *implicit* source's lists carry an importance (budgets
follow it, Section 3.5); an *explicit* source has one list per sampled followed
topic (equal budgets). The arm merges them with the serving plan (`serve`).

Sources that need no trained model:

- `LegacyTopicSource`: the legacy inverted-index retriever of the world's logging
  policy, as an explicit source: for each sampled followed topic, the items that
  carry it drawn by popularity (a fresh draw each day, the same for every user).
- `OracleSource`: one list per true interest (items of that sub-topic by
  popularity, importance = the interest's weight): the best a retriever can know.
- `RandomSource`: one list of uniformly random items per user and day.

Trained runs are sources too (`multiembed.simulate.build_arm`).
"""

from __future__ import annotations

from typing import Final, NamedTuple, Protocol

import numpy as np

from multiembed.simulate._draws import LEGACY, RANDOM, uniform
from multiembed.simulate._population import Population

IMPLICIT: Final = "implicit"
EXPLICIT: Final = "explicit"


class SourceLists(NamedTuple):
    """``S`` ranked lists for each of ``B`` users, ``W`` deep.

    Attributes:
        ids: ``[B, S, W]`` int64 item ids, best first, ``-1`` pads.
        scores: ``[B, S, W]`` float32, ``-inf`` at padding.
        importance: ``[B, S]`` float64 weight of each list (implicit budgets; 0 = unused).
        topics: ``[B, S]`` int64 the topic of each explicit list, ``-1`` for none.
    """

    ids: np.ndarray
    scores: np.ndarray
    importance: np.ndarray
    topics: np.ndarray


class DayRequest(NamedTuple):
    """What the sources of an arm know about ``B`` users on one day.

    Attributes:
        users: ``[B]`` int64 user ids.
        day: the simulated day (0-based).
        history: ``[B, L]`` int64 each user's engagement history in this arm, ``-1`` pads.
        topics: ``[B, K_ex]`` int64 the followed topics sampled for the day, ``-1`` pads.
        depth: ``W``, how deep every list must be (a list this deep serves the plan).
    """

    users: np.ndarray
    day: int
    history: np.ndarray
    topics: np.ndarray
    depth: int


class CandidateSource(Protocol):
    """Proposes ranked lists for a day's requests; `kind` is ``implicit`` or ``explicit``."""

    kind: str
    name: str

    def lists(self, request: DayRequest) -> SourceLists: ...


def empty_lists(b: int, s: int, w: int) -> SourceLists:
    """``[b, s, w]`` lists of padding."""
    return SourceLists(
        np.full((b, s, w), -1, dtype=np.int64),
        np.full((b, s, w), -np.inf, dtype=np.float32),
        np.zeros((b, s)),
        np.full((b, s), -1, dtype=np.int64),
    )


def _ranked_by(keys: np.ndarray, members: np.ndarray, depth: int) -> np.ndarray:
    """The `depth` members with the largest keys, best first (ties: smaller id)."""
    order = np.lexsort((members, -keys))[:depth]
    return members[order]


class LegacyTopicSource:
    """The legacy inverted-index topic retriever (explicit kind, no model).

    Each day every topic's list is its valid items drawn without replacement with
    probability proportional to popularity (Gumbel top-k over the day's hashed
    noise), so the retriever proposes the popular items of the followed topics, as
    the world's logging policy does, and the draw changes from day to day.
    """

    kind = EXPLICIT
    name = "legacy"

    def __init__(self, population: Population, *, seed: int) -> None:
        self.population = population
        self.seed = seed
        self._day = -1
        self._cache: dict[int, np.ndarray] = {}

    def topic_list(self, topic: int, day: int, depth: int) -> np.ndarray:
        """The day's ranked items of `topic` (at most `depth`)."""
        if day != self._day:
            self._day, self._cache = day, {}
        if topic not in self._cache:
            members = self.population.topic_members.members(topic)
            gumbel = -np.log(-np.log(uniform(self.seed, LEGACY, day, members) + 1e-300) + 1e-300)
            keys = np.log(self.population.popularity[members] + 1e-300) + gumbel
            self._cache[topic] = _ranked_by(keys, members, members.size)
        return self._cache[topic][:depth]

    def lists(self, request: DayRequest) -> SourceLists:
        b, s = request.topics.shape
        out = empty_lists(b, s, request.depth)
        for i, j in zip(*np.nonzero(request.topics >= 0), strict=True):
            t = int(request.topics[i, j])
            items = self.topic_list(t, request.day, request.depth)
            out.ids[i, j, : items.size] = items
            out.scores[i, j, : items.size] = -np.arange(items.size, dtype=np.float32)
            out.topics[i, j] = t
        return out


class OracleSource:
    """One list per true interest of the user (implicit kind): its sub-topic's valid
    items by popularity, with the interest's weight as importance."""

    kind = IMPLICIT
    name = "oracle"

    def __init__(self, population: Population) -> None:
        self.population = population
        valid = np.flatnonzero(population.item_valid)
        sub = population.item_subtopic[valid]
        self._by_subtopic = {
            int(s): _ranked_by(population.popularity[valid[sub == s]], valid[sub == s], valid.size)
            for s in np.unique(sub)
        }
        self._width = max(1, int((population.interest > 0).sum(axis=1).max()))

    def lists(self, request: DayRequest) -> SourceLists:
        b, w = request.users.size, request.depth
        out = empty_lists(b, self._width, w)
        for i, u in enumerate(request.users.tolist()):
            weights = self.population.interest[u]
            subs = np.flatnonzero(weights > 0)
            subs = subs[np.argsort(-weights[subs], kind="stable")]
            for j, s in enumerate(subs.tolist()):
                items = self._by_subtopic.get(s, np.zeros(0, dtype=np.int64))[:w]
                out.ids[i, j, : items.size] = items
                out.scores[i, j, : items.size] = -np.arange(items.size, dtype=np.float32)
                out.importance[i, j] = weights[s]
        return out


class RandomSource:
    """One list of uniformly random valid items per user and day (implicit kind)."""

    kind = IMPLICIT
    name = "random"

    def __init__(self, population: Population, *, seed: int) -> None:
        self.valid = np.flatnonzero(population.item_valid)
        self.seed = seed

    def lists(self, request: DayRequest) -> SourceLists:
        b, w = request.users.size, min(request.depth, self.valid.size)
        out = empty_lists(b, 1, request.depth)
        keys = uniform(self.seed, RANDOM, request.users[:, None], request.day, self.valid[None, :])
        top = np.argpartition(keys, w - 1, axis=1)[:, :w] if w < self.valid.size else None
        for i in range(b):
            picked = self.valid if top is None else self.valid[top[i]]
            picked = picked[np.argsort(keys[i, np.searchsorted(self.valid, picked)], kind="stable")]
            out.ids[i, 0, :w] = picked
            out.scores[i, 0, :w] = -np.arange(w, dtype=np.float32)
            out.importance[i, 0] = 1.0
        return out
