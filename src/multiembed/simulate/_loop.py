"""The simulation: days of sessions, every arm served, one shared ranking stage, engagement.

For each day ``d`` and user ``u`` (the same in every arm, from `multiembed.simulate._draws`):

1. sessions: ``Poisson(rate[u])`` sessions that day (the user's activity level);
2. retrieval: each arm's sources propose lists from the user's history *in that
   arm* (so feedback differs between arms), merged by the serving plan (`serve_day`);
   explicit sources use the same followed topics, sampled for the day;
3. ranking: one stage for every arm, a fixed noisy scorer of the user's true
   interest, ``interest(u, i) + ranker_noise * z(u, i)`` with ``z`` a hashed normal;
   items shown to the user before (in that arm) are left out; each session shows
   the next `SimulationConfig.shown` items of that order;
4. engagement: the user engages with a shown item when the hashed coin
   ``c(u, i) < engage_scale * interest(u, i)``, and saves it when a second coin
   is below `SimulationConfig.save_share`; engaged items join the history at the
   end of the day.

Coins depend on (user, item) only, so an item shown to a user in two arms has the
same outcome in both: arms differ only through what they retrieve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from multiembed.index import Ranked
from multiembed.retrieve import sample_topics
from multiembed.simulate._arm import Arm, Served, plan_depth, serve_day
from multiembed.simulate._config import SimulationConfig
from multiembed.simulate._draws import (
    ENGAGE,
    RANKER,
    SAVE,
    SESSIONS,
    TOPICS,
    normal,
    poisson,
    uniform,
)
from multiembed.simulate._population import Population
from multiembed.simulate._sources import DayRequest


@dataclass(frozen=True)
class SimLog:
    """Every engagement of a simulation (``E`` rows) and the impressions per arm and user.

    Attributes:
        arms: the arm names; ``arm`` indexes them.
        arm, user, day, session, position, item: ``[E]`` int64.
        save: ``[E]`` bool, a save (else a click).
        kind: ``[E]`` int64 provenance code (`multiembed.simulate.KINDS`).
        source_topic: ``[E]`` int64 the topic of the explicit list that produced
            the item, ``-1`` otherwise (the source interest of Section 3.3.2).
        impressions: ``[A, U]`` int64 items shown.
        sessions: ``[U, D]`` int64 sessions of each user per day (all arms).
    """

    arms: tuple[str, ...]
    arm: np.ndarray
    user: np.ndarray
    day: np.ndarray
    session: np.ndarray
    position: np.ndarray
    item: np.ndarray
    save: np.ndarray
    kind: np.ndarray
    source_topic: np.ndarray
    impressions: np.ndarray
    sessions: np.ndarray

    def __len__(self) -> int:
        return int(self.user.size)


def sessions_per_day(population: Population, config: SimulationConfig) -> np.ndarray:
    """``[U, D]`` sessions of each user on each day."""
    users = np.arange(population.n_users)[:, None]
    days = np.arange(config.days)[None, :]
    u = uniform(config.seed, SESSIONS, users, days)
    return poisson(np.broadcast_to(population.rate[:, None], u.shape), u)


def day_topics(
    population: Population, users: np.ndarray, day: int, k_ex: int, seed: int
) -> np.ndarray:
    """``[B, k_ex]`` followed topics sampled for each user on `day` (`sample_topics`, seeded
    by the day so that topics rotate), ``-1`` pads."""
    out = np.full((users.size, k_ex), -1, dtype=np.int64)
    day_seed = int(uniform(seed, TOPICS, day) * 2**31)
    for i, u in enumerate(users.tolist()):
        f = population.followed[u]
        t = sample_topics(f[f >= 0], k_ex, seed=day_seed, user=u)
        out[i, : t.size] = t
    return out


def popular_list(population: Population, total: int) -> Ranked:
    """The popularity fallback: the `total` most popular valid items."""
    valid = np.flatnonzero(population.item_valid)
    order = np.lexsort((valid, -population.popularity[valid]))[:total]
    return Ranked(valid[order], population.popularity[valid[order]].astype(np.float32))


def simulate(
    population: Population,
    arms: Sequence[Arm],
    config: SimulationConfig,
    *,
    batch_size: int = 256,
    on_day: Callable[[int], None] | None = None,
) -> SimLog:
    """Run every arm over the same users, days and sessions; returns the engagement log.

    Args:
        population: the users and items (`load_population`).
        arms: the arms; the first is the control in reports.
        config: behaviour of users and of the ranking stage.
        batch_size: users per batch of retrieval (a trained run embeds them together).
        on_day: called after each simulated day with its index (progress).
    """
    n_users = population.n_users
    sessions = sessions_per_day(population, config)
    depth = plan_depth(arms)
    k_ex = max(a.settings.k_ex for a in arms)
    total = max(a.settings.total for a in arms)
    history = [population.history.copy() for _ in arms]
    empty = np.zeros(0, dtype=np.int64)
    seen: list[list[np.ndarray]] = [[empty] * n_users for _ in arms]
    impressions = np.zeros((len(arms), n_users), dtype=np.int64)
    rows: list[np.ndarray] = []
    for day in range(config.days):
        active = np.flatnonzero(sessions[:, day] > 0)
        for start in range(0, active.size, batch_size):
            users = active[start : start + batch_size]
            topics = day_topics(population, users, day, k_ex, config.seed)
            for a, arm in enumerate(arms):
                shown_before = [seen[a][u] for u in users.tolist()]
                deep = depth + max(s.size for s in shown_before)
                request = DayRequest(
                    users, day, history[a][users], topics[:, : arm.settings.k_ex], deep
                )
                popular = popular_list(population, total + deep)
                served = serve_day(arm, request, popular, shown_before)
                for i, u in enumerate(users.tolist()):
                    engaged = _show(population, config, a, u, day, int(sessions[u, day]), served[i])
                    impressions[a, u] += engaged.items.size
                    seen[a][u] = np.union1d(seen[a][u], engaged.items)
                    if engaged.rows.size:
                        rows.append(engaged.rows)
                        history[a][u] = _append(history[a][u], engaged.rows[:, 5])
        if on_day is not None:
            on_day(day)
    table = np.concatenate(rows) if rows else np.zeros((0, 9), dtype=np.int64)
    names = ("arm", "user", "day", "session", "position", "item", "save", "kind", "source_topic")
    columns = dict(zip(names, table.T, strict=True))
    columns["save"] = columns["save"].astype(bool)
    return SimLog(
        arms=tuple(a.name for a in arms), impressions=impressions, sessions=sessions, **columns
    )


class _Engaged(NamedTuple):
    """One user's day in one arm: engagement rows ``[e, 9]`` and the items shown."""

    rows: np.ndarray
    items: np.ndarray


def _show(
    population: Population,
    config: SimulationConfig,
    arm: int,
    user: int,
    day: int,
    n_sessions: int,
    served: Served,
) -> _Engaged:
    """Rank the user's candidates, show `n_sessions` pages, draw engagements.

    Returns the engagement rows ``[e, 9]`` (arm, user, day, session, position, item,
    save, kind, topic) and the items shown.
    """
    ids, kind, topic = served
    interest = population.true_interest(np.array([user]), ids[None, :], config)[0]
    score = interest + config.ranker_noise * normal(config.seed, RANKER, user, ids)
    order = np.lexsort((ids, -score))[: n_sessions * config.shown]
    ids, kind, topic, interest = ids[order], kind[order], topic[order], interest[order]
    engaged = uniform(config.seed, ENGAGE, user, ids) < config.engage_scale * interest
    save = uniform(config.seed, SAVE, user, ids) < config.save_share
    e = np.flatnonzero(engaged)
    rows = np.empty((e.size, 9), dtype=np.int64)  # the columns of the docstring
    rows[:, :3] = (arm, user, day)
    rows[:, 3], rows[:, 4] = np.divmod(e, config.shown)
    rows[:, 5:] = np.stack((ids[e], save[e], kind[e], topic[e]), axis=1)
    return _Engaged(rows, ids)


def _append(history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """`history` ``[L]`` (right-aligned) with `items` appended, oldest dropped."""
    return np.concatenate((history, items))[-history.size :]
