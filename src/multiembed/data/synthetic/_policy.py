"""The logging policy: what each user is shown and engages with over the window.

Each user gets a number of engagement *slots* (by segment: active users about
`engagements_per_day * days` times a log-normal activity, low-activity users
1 to 4, new users none or a day's worth after sign-up) at uniform times in the
window. Each slot is filled by one of two surfaces:

- the **legacy inverted-index retriever** (probability `legacy_share`, when the
  user follows a topic at that time): it picks one currently followed topic
  uniformly and shows up to `LEGACY_TRIES` items of that topic drawn by
  popularity; the user engages with the first one they accept, with
  probability `0.5 + 0.5 * w / w_max` for an item in one of their sub-topics
  of weight `w` (long-term interest included), `SIBLING_ACCEPT` for a sibling
  sub-topic and `STRANGER_ACCEPT` otherwise. The engagement logs
  `source_topic` = the followed topic (the paper's logging-time association,
  section 3.3.2). When nothing is accepted the slot goes to the home feed.
- the **implicit home feed**: a recent interest drawn by weight, then an item
  of that sub-topic by popularity; with probability `HOME_EXPLORE_SHARE` an
  exploration item from a sub-topic the user has no interest in instead.
  Home-feed engagements have no `source_topic`, and never touch the topic of
  the user's long-term interest, so that interest appears only through the
  legacy retriever (section 3.4: "long-term interests ... otherwise forgotten").

A slot is negative ("hide") with probability `negative_action_share`: the
user hides an item they have no interest in (a rejected legacy item, or an
off-interest home-feed item). Positive slots are "save" with probability
`SAVE_SHARE`, else "click".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from multiembed.data.synthetic._world import (
    ACTIVE,
    LOW_ACTIVITY,
    NEW,
    Users,
    World,
)

ACTION_NAMES: Final = ("click", "save", "hide")
CLICK, SAVE, HIDE = 0, 1, 2
SAVE_SHARE: Final = 0.3
HOME_EXPLORE_SHARE: Final = 0.05
LEGACY_TRIES: Final = 4
EXPLORE_TRIES: Final = 8
SIBLING_ACCEPT: Final = 0.2
STRANGER_ACCEPT: Final = 0.02
ACTIVITY_SIGMA: Final = 0.7  # log-normal spread of active users' activity (mean 1)
NEW_USER_SILENT_SHARE: Final = 1.0 / 3.0
LOW_ACTIVITY_MAX: Final = 4  # low-activity users have 1..LOW_ACTIVITY_MAX engagements


@dataclass(frozen=True, kw_only=True)
class Engagements:
    """One block's engagement log, sorted by (user, ts), no two rows alike; `N` rows.

    Attributes:
        user: `[N]` int64 user index.
        item: `[N]` int64 item index.
        ts: `[N]` int64 seconds inside the window.
        action: `[N]` int64 code into `ACTION_NAMES`.
        source_topic: `[N]` int64 followed topic index that produced the
            engagement, `-1` for the home feed.
        legacy: `[N]` bool, True when the legacy retriever produced it.
    """

    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    action: np.ndarray
    source_topic: np.ndarray
    legacy: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


def _slot_counts(world: World, users: Users, rng: np.random.Generator) -> np.ndarray:
    """`[B]` int64 number of engagement slots per user."""
    cfg = world.config
    b = len(users)
    sigma = ACTIVITY_SIGMA
    rate = cfg.engagements_per_day * rng.lognormal(-0.5 * sigma**2, sigma, b)
    active = rng.poisson(rate * cfg.days)
    low = rng.integers(1, LOW_ACTIVITY_MAX + 1, b)
    new = np.where(
        rng.random(b) < NEW_USER_SILENT_SHARE, 0, 1 + rng.poisson(np.maximum(rate - 1.0, 0.0))
    )
    seg = users.segment
    return np.select([seg == ACTIVE, seg == LOW_ACTIVITY, seg == NEW], [active, low, new], 0)


def _first(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column of the first True per row of `[n, R]` `mask`, and whether there is one."""
    return np.argmax(mask, axis=1), np.asarray(mask.any(axis=1))


def simulate(world: World, users: Users, block: int) -> Engagements:
    """Runs the logging policy for one user block (deterministic in `(seed, block)`).

    >>> from multiembed.config.sections import SyntheticConfig
    >>> from multiembed.data.synthetic._world import generate_world
    >>> w = generate_world(SyntheticConfig(n_users=50, n_items=500, n_topics=5))
    >>> e = simulate(w, w.users(0), 0)
    >>> bool((e.source_topic[~e.legacy] == -1).all() and (e.source_topic[e.legacy] >= 0).all())
    True
    """
    cfg = world.config
    items = world.items
    n_s = cfg.subtopics_per_topic
    rng = np.random.default_rng([cfg.seed, 2, block])
    _, end = world.window  # slots start at each user's sign-up (the window start for most)

    counts = _slot_counts(world, users, rng)
    row = np.repeat(np.arange(len(users)), counts)  # [N] row of the user in the block
    n = len(row)
    lo = users.signup[row]
    ts = lo + (rng.random(n) * (end - lo)).astype(np.int64)
    order = np.lexsort((ts, row))
    row, ts = row[order], ts[order]

    # All interests, long-term included: [B, K+1] sub-topics and weights.
    all_sub = np.concatenate((users.interests, users.long_term[:, None]), axis=1)
    all_w = np.concatenate((users.weights, users.long_term_weight[:, None]), axis=1)

    # Legacy retriever: one topic among those followed at ts.
    f_topic = users.follow_topic[row]  # [N, F]
    following = (
        (f_topic >= 0)
        & (users.followed_at[row] <= ts[:, None])
        & ((users.unfollowed_at[row] < 0) | (ts[:, None] < users.unfollowed_at[row]))
    )
    negative = rng.random(n) < cfg.negative_action_share
    legacy = (rng.random(n) < cfg.legacy_share) & following.any(axis=1)
    pick = np.argmax(np.where(following, rng.random(following.shape), -1.0), axis=1)
    source_topic = np.where(legacy, f_topic[np.arange(n), pick], -1)
    item = np.full(n, -1, dtype=np.int64)

    lg = np.flatnonzero(legacy)
    shown = world.by_topic.draw(np.repeat(source_topic[lg, None], LEGACY_TRIES, axis=1), rng)
    shown_sub = items.subtopic[shown]  # [nL, R]
    u_sub = all_sub[row[lg]][:, None, :]  # [nL, 1, K+1]
    weight = ((shown_sub[:, :, None] == u_sub) * all_w[row[lg]][:, None, :]).sum(axis=2)
    sibling = ((shown_sub[:, :, None] // n_s == u_sub // n_s) & (u_sub >= 0)).any(axis=2)
    w_max = all_w[row[lg]].max(axis=1, keepdims=True)
    p_accept = np.where(
        weight > 0, 0.5 + 0.5 * weight / w_max, np.where(sibling, SIBLING_ACCEPT, STRANGER_ACCEPT)
    )
    accepted = rng.random(shown.shape) < p_accept
    disliked = (weight == 0) & ~sibling
    col = np.where(negative[lg, None], disliked, accepted)  # [nL, R]
    first, found = _first(col)
    item[lg] = np.where(found, shown[np.arange(len(lg)), first], -1)
    legacy[lg[~found]] = False  # nothing engaged with: the home feed fills the slot
    source_topic[lg[~found]] = -1

    # Home feed, on-interest positives: an interest by weight, then an item by popularity.
    explore = rng.random(n) < HOME_EXPLORE_SHARE
    home = np.flatnonzero(~legacy & ~negative & ~explore)
    cum = np.cumsum(users.weights[row[home]], axis=1)  # [nH, K]
    r = rng.random(len(home)) * cum[:, -1]
    j = np.minimum((cum <= r[:, None]).sum(axis=1), cum.shape[1] - 1)
    item[home] = world.by_subtopic.draw(users.interests[row[home], j], rng)

    # Home feed, off-interest items (negatives and exploration): a sub-topic by
    # mass that is none of the user's interests nor under the long-term topic.
    off = np.flatnonzero(~legacy & (negative | explore))
    mass_cum = np.cumsum(world.subtopic_mass)
    cand = np.searchsorted(mass_cum, rng.random((len(off), EXPLORE_TRIES)) * mass_cum[-1])
    cand = np.minimum(cand, world.n_subtopics - 1)
    is_interest = (cand[:, :, None] == users.interests[row[off]][:, None, :]).any(axis=2)
    lt = users.long_term[row[off]]
    under_lt = (lt[:, None] >= 0) & (cand // n_s == (lt // n_s)[:, None])
    first, found = _first(~is_interest & ~under_lt)
    sub = cand[np.arange(len(off)), first]
    item[off[found]] = world.by_subtopic.draw(sub[found], rng)

    action = np.where(negative, HIDE, np.where(rng.random(n) < SAVE_SHARE, SAVE, CLICK))
    # Off-interest draws can fail for users interested in nearly everything; and
    # two slots of one user in the same second can pick the same item: log it once.
    order = np.lexsort((action, item, ts, row))  # by (user, ts), exact repeats adjacent
    row, item, ts, action = row[order], item[order], ts[order], action[order]
    source_topic, legacy = source_topic[order], legacy[order]
    repeat = np.zeros(n, dtype=bool)
    repeat[1:] = (
        (row[1:] == row[:-1])
        & (ts[1:] == ts[:-1])
        & (item[1:] == item[:-1])
        & (action[1:] == action[:-1])
    )
    keep = (item >= 0) & ~repeat
    return Engagements(
        user=users.index[row[keep]],
        item=item[keep],
        ts=ts[keep],
        action=action[keep].astype(np.int64),
        source_topic=source_topic[keep].astype(np.int64),
        legacy=legacy[keep],
    )
