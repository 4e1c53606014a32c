"""Ground truth of the synthetic world: the topic space, the item catalogue and the users.

Everything here is a deterministic function of `SyntheticConfig`:

- The world (topics, items) comes from `numpy.random.default_rng([seed, 0])`.
- Users are generated in fixed blocks of `USER_BLOCK` users; block `b` uses
  `default_rng([seed, 1, b])`, so any block can be regenerated on its own (the
  engagement, follow and ground-truth streams each regenerate the users they
  need instead of holding them), and a world with more users starts with the
  same users as a smaller one.

Raw keys (what the adapter emits; validation maps them to contiguous ids):

- top-level topic `t` in `0..T-1` has raw key `t + 1`;
- sub-topic `s` in `0..T*S-1` (parent `s // S`) has raw key `T + 1 + s`;
- item `i` has raw id `i + 1`, user `u` raw id `u + 1`.

The offsets are deliberate: raw ids never coincide with contiguous ids, so code
that confuses the two fails on the default dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from multiembed.config.sections import SyntheticConfig
from multiembed.errors import ConfigError

#: Users per generated block (and per engagement RecordBatch). Part of the
#: world's definition: changing it changes every user.
USER_BLOCK: Final = 2000
SECONDS_PER_DAY: Final = 86_400

#: Within a sub-topic, item popularity is proportional to 1 / rank**ZIPF_EXPONENT.
ZIPF_EXPONENT: Final = 1.0
#: Share of items tagged with a second, unrelated top-level topic (paper 3.3.2:
#: "one item can belong to multiple topics", which is what makes a topic
#: sampled from the item's topics a noisy condition).
SECONDARY_TOPIC_SHARE: Final = 0.15
#: Categorical fields: a "format" code and a "creator bucket" code.
N_FORMATS: Final = 4
N_CREATOR_BUCKETS: Final = 64
FORMAT_AFFINITY: Final = 0.6  # P(item has its sub-topic's usual format)

SEGMENTS: Final = ("active", "low_activity", "new")
ACTIVE, LOW_ACTIVITY, NEW = 0, 1, 2

#: Follow model: the head interest's parent topic is followed with
#: FOLLOW_HEAD_P, other interests' parents with FOLLOW_OTHER_P; a random
#: unrelated topic is followed with FOLLOW_NOISE_P (noise); follows other than
#: the long-term one are unfollowed inside the window with UNFOLLOW_P.
FOLLOW_HEAD_P: Final = 0.8
FOLLOW_OTHER_P: Final = 0.5
FOLLOW_NOISE_P: Final = 0.3
UNFOLLOW_P: Final = 0.05
FOLLOW_REASONS: Final = ("interest", "long_term", "noise")
LONG_TERM_WEIGHT: Final = (0.05, 0.15)  # uniform range of a long-term interest's weight
WEIGHT_DECAY: Final = (0.35, 0.65)  # uniform range of the head->tail geometric decay


def topic_key(topic: np.ndarray | int) -> np.ndarray:
    """Raw key of top-level topic indices (`-1` stays `-1`)."""
    t = np.asarray(topic, dtype=np.int64)
    return np.where(t >= 0, t + 1, -1)


def subtopic_key(subtopic: np.ndarray | int, n_topics: int) -> np.ndarray:
    """Raw key of sub-topic indices (`-1` stays `-1`)."""
    s = np.asarray(subtopic, dtype=np.int64)
    return np.where(s >= 0, s + n_topics + 1, -1)


@dataclass(frozen=True, kw_only=True)
class Items:
    """The item catalogue, indexed by item index `i` in `0..I-1`.

    Attributes:
        subtopic: `[I]` int64 sub-topic index of each item.
        topic: `[I]` int64 parent topic index (`subtopic // S`).
        secondary: `[I]` int64 extra top-level topic index, `-1` for none.
        popularity: `[I]` float64 global popularity (sub-topic mass times a
            Zipf law over the item's rank inside its sub-topic); sums to 1.
        vectors: `[I, D]` float32 pretrained vectors (rows of invalid items are
            kept but never emitted).
        categorical: `[I, 2]` int64 codes: format, creator bucket.
        valid: `[I]` bool, False for items whose vector is missing.
    """

    subtopic: np.ndarray
    topic: np.ndarray
    secondary: np.ndarray
    popularity: np.ndarray
    vectors: np.ndarray
    categorical: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Sampler:
    """Draws members of groups with probability proportional to a weight.

    `cum` holds, for the members of group `g` (contiguous in `members`), the
    running share of the group's weight offset by `g`, so a draw is a single
    `searchsorted` of `g + u` with `u ~ U[0, 1)`.
    """

    members: np.ndarray  # [M] int64 item indices, grouped
    cum: np.ndarray  # [M] float64
    start: np.ndarray  # [G] first position of each group
    stop: np.ndarray  # [G] one past the last position

    @classmethod
    def build(
        cls, group: np.ndarray, member: np.ndarray, weight: np.ndarray, n_groups: int
    ) -> Sampler:
        order = np.lexsort((member, group))
        group, member, weight = group[order], member[order], weight[order]
        counts = np.bincount(group, minlength=n_groups)
        stop = np.cumsum(counts)
        start = stop - counts
        csum = np.cumsum(weight)
        before = np.concatenate(([0.0], csum))[start]  # weight of earlier groups
        totals = np.bincount(group, weights=weight, minlength=n_groups)
        totals = np.where(counts > 0, totals, 1.0)
        share = (csum - np.repeat(before, counts)) / np.repeat(totals, counts)
        share[stop[counts > 0] - 1] = 1.0  # exact group ends despite rounding
        return cls(members=member, cum=group + share, start=start, stop=stop)

    def draw(self, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Members drawn for each entry of `group` (any shape); groups must be non-empty."""
        target = group + rng.random(group.shape)
        pos = np.searchsorted(self.cum, target, side="right")
        pos = np.clip(pos, self.start[group], self.stop[group] - 1)
        return self.members[pos]


@dataclass(frozen=True, kw_only=True)
class World:
    """Topics and items of one synthetic world; users come in blocks from `users(b)`.

    Attributes:
        config: the parameters.
        subtopic_mass: `[T*S]` float64 share of all engagement mass per sub-topic;
            popular sub-topics are also more often someone's interest.
        items: the catalogue.
        by_subtopic: draws items of a sub-topic by popularity (the home feed).
        by_topic: the legacy inverted index: draws items tagged with a
            top-level topic (primary or secondary) by popularity.

    >>> from multiembed.config.sections import SyntheticConfig
    >>> w = generate_world(SyntheticConfig(n_users=10, n_items=500, n_topics=5))
    >>> w.n_subtopics, w.items.vectors.shape, w.n_blocks
    (20, (500, 32), 1)
    """

    config: SyntheticConfig
    subtopic_mass: np.ndarray
    items: Items
    by_subtopic: Sampler
    by_topic: Sampler

    @property
    def n_topics(self) -> int:
        return self.config.n_topics

    @property
    def n_subtopics(self) -> int:
        return self.config.n_topics * self.config.subtopics_per_topic

    @property
    def n_blocks(self) -> int:
        return -(-self.config.n_users // USER_BLOCK)

    @property
    def window(self) -> tuple[int, int]:
        """`[start, end)` of the engagement log in seconds."""
        start = self.config.start_ts
        return start, start + self.config.days * SECONDS_PER_DAY

    def users(self, block: int) -> Users:
        """The users of block `block` (`USER_BLOCK` users, fewer in the last block)."""
        return make_users(self, block)

    def topic_names(self) -> dict[str, str]:
        """Raw topic key (as a string) -> name, for top-level topics and sub-topics."""
        t, s = self.n_topics, self.config.subtopics_per_topic
        names = {str(k + 1): f"topic_{k:02d}" for k in range(t)}
        names.update({str(t + 1 + k): f"topic_{k // s:02d}/sub_{k % s}" for k in range(t * s)})
        return names

    def topic_parents(self) -> dict[str, str]:
        """Raw sub-topic key -> raw key of its parent topic (as strings)."""
        t, s = self.n_topics, self.config.subtopics_per_topic
        return {str(t + 1 + k): str(k // s + 1) for k in range(t * s)}


def _check(config: SyntheticConfig) -> None:
    n_sub = config.n_topics * config.subtopics_per_topic
    problems = []
    if config.n_items < n_sub:
        problems.append(
            f"synthetic.n_items = {config.n_items}: must be >= n_topics * subtopics_per_topic "
            f"({n_sub}) so that every sub-topic has an item"
        )
    if config.interests_max > n_sub:
        problems.append(
            f"synthetic.interests_max = {config.interests_max}: must be <= the number of "
            f"sub-topics ({n_sub})"
        )
    if problems:
        raise ConfigError(problems)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def generate_world(config: SyntheticConfig) -> World:
    """Builds the topics and items of the world described by `config` (users stay lazy).

    Item vectors: `vector = c_s + d_t + vector_noise * N(0, I_D)` where `c_s`
    is the unit centroid of the item's sub-topic and `d_t` the unit direction
    of its parent topic (so siblings are closer than strangers). The noise is
    per coordinate: at D = 32 and 0.35 a nearest-centroid classifier recovers
    the sub-topic of about 83% of items, the topic of about 88%.

    Raises:
        ConfigError: when there are fewer items than sub-topics or more
            interests per user than sub-topics.
    """
    _check(config)
    rng = np.random.default_rng([config.seed, 0])
    n_t, n_s, dim = config.n_topics, config.subtopics_per_topic, config.vector_dim
    n_sub, n_items = n_t * n_s, config.n_items

    subtopic_mass = rng.gamma(2.0, 1.0, n_sub)
    subtopic_mass /= subtopic_mass.sum()

    # Every sub-topic gets at least one item; the rest are spread uniformly.
    subtopic = np.concatenate((rng.permutation(n_sub), rng.integers(0, n_sub, n_items - n_sub)))
    subtopic = rng.permutation(subtopic).astype(np.int64)
    topic = subtopic // n_s

    has_secondary = rng.random(n_items) < SECONDARY_TOPIC_SHARE
    if n_t > 1:
        # A uniformly drawn topic other than the item's own.
        other = (topic + rng.integers(1, n_t, n_items)) % n_t
        secondary = np.where(has_secondary, other, -1)
    else:
        secondary = np.full(n_items, -1, dtype=np.int64)

    # Zipf popularity by a random rank inside the sub-topic, scaled by the sub-topic's mass.
    order = np.lexsort((rng.random(n_items), subtopic))
    counts = np.bincount(subtopic, minlength=n_sub)
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items) - np.repeat(np.cumsum(counts) - counts, counts)
    zipf = 1.0 / (rank + 1.0) ** ZIPF_EXPONENT
    zipf_total = np.bincount(subtopic, weights=zipf, minlength=n_sub)
    popularity = subtopic_mass[subtopic] * zipf / zipf_total[subtopic]

    centroid = _normalise(rng.standard_normal((n_sub, dim)))
    direction = _normalise(rng.standard_normal((n_t, dim)))
    noise = config.vector_noise * rng.standard_normal((n_items, dim))
    vectors = (centroid[subtopic] + direction[topic] + noise).astype(np.float32)

    usual_format = rng.integers(0, N_FORMATS, n_sub)
    fmt = np.where(
        rng.random(n_items) < FORMAT_AFFINITY,
        usual_format[subtopic],
        rng.integers(0, N_FORMATS, n_items),
    )
    creator_base = rng.integers(0, N_CREATOR_BUCKETS, n_sub)
    creator = (creator_base[subtopic] + rng.geometric(0.5, n_items) - 1) % N_CREATOR_BUCKETS
    categorical = np.stack((fmt, creator), axis=1).astype(np.int64)

    valid = np.ones(n_items, dtype=bool)
    valid[rng.permutation(n_items)[: round(config.invalid_item_share * n_items)]] = False

    items = Items(
        subtopic=subtopic,
        topic=topic,
        secondary=secondary,
        popularity=popularity,
        vectors=vectors,
        categorical=categorical,
        valid=valid,
    )
    idx = np.arange(n_items, dtype=np.int64)
    tagged = secondary >= 0
    by_topic = Sampler.build(
        np.concatenate((topic, secondary[tagged])),
        np.concatenate((idx, idx[tagged])),
        np.concatenate((popularity, popularity[tagged])),
        n_t,
    )
    return World(
        config=config,
        subtopic_mass=subtopic_mass,
        items=items,
        by_subtopic=Sampler.build(subtopic, idx, popularity, n_sub),
        by_topic=by_topic,
    )


@dataclass(frozen=True, kw_only=True)
class Users:
    """Ground truth of one block of `B` users (`K = interests_max`, `F = K + 2` follow slots).

    Attributes:
        index: `[B]` int64 user indices (raw id = index + 1).
        segment: `[B]` int64 code into `SEGMENTS`.
        interests: `[B, K]` int64 sub-topic indices of the recent (home-feed)
            interests, head first; `-1` pads users with fewer than K.
        weights: `[B, K]` float64 interest weights (0 on padding), decaying
            from the head; with `long_term_weight` they sum to 1 per user.
        long_term: `[B]` int64 sub-topic of the long-term interest, `-1` for none.
            Its parent topic is followed and shared with no recent interest;
            the home feed never shows it, only the legacy retriever does.
        long_term_weight: `[B]` float64, 0 for none.
        follow_topic: `[B, F]` int64 followed top-level topic indices, `-1` = empty slot.
        follow_reason: `[B, F]` int64 code into `FOLLOW_REASONS`.
        followed_at: `[B, F]` int64 seconds (before the window; at sign-up for new users).
        unfollowed_at: `[B, F]` int64 seconds inside the window, `-1` = still followed.
        signup: `[B]` int64 first second a new user can act (window start for others).
    """

    index: np.ndarray
    segment: np.ndarray
    interests: np.ndarray
    weights: np.ndarray
    long_term: np.ndarray
    long_term_weight: np.ndarray
    follow_topic: np.ndarray
    follow_reason: np.ndarray
    followed_at: np.ndarray
    unfollowed_at: np.ndarray
    signup: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


def _gumbel_top(log_w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """`[B, k]` indices drawn without replacement with prob. ∝ exp(log_w), in draw order."""
    keys = log_w + rng.gumbel(size=log_w.shape)
    if k < keys.shape[1]:
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(keys.shape[1]), keys.shape).copy()
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def make_users(world: World, block: int) -> Users:
    """Regenerates user block `block` (deterministic in `(seed, block)`)."""
    cfg = world.config
    rng = np.random.default_rng([cfg.seed, 1, block])
    lo = block * USER_BLOCK
    index = np.arange(lo, min(lo + USER_BLOCK, cfg.n_users), dtype=np.int64)
    b, k_max, n_t, n_s = len(index), cfg.interests_max, world.n_topics, cfg.subtopics_per_topic
    start, end = world.window

    u = rng.random(b)
    low_share = min(cfg.low_activity_share, 1.0 - cfg.new_user_share)
    segment = np.where(
        u < cfg.new_user_share,
        NEW,
        np.where(u < cfg.new_user_share + low_share, LOW_ACTIVITY, ACTIVE),
    ).astype(np.int64)

    # Recent interests: k distinct sub-topics, popular sub-topics more likely.
    k = rng.integers(cfg.interests_min, k_max + 1, b)
    log_mass = np.broadcast_to(np.log(world.subtopic_mass), (b, world.n_subtopics))
    drawn = _gumbel_top(log_mass, k_max, rng)  # [B, K]
    present = np.arange(k_max) < k[:, None]
    interests = np.where(present, drawn, -1)
    # Geometric decay with jitter: one head, some torso, a tail.
    decay = rng.uniform(*WEIGHT_DECAY, b)
    raw = decay[:, None] ** np.arange(k_max) * rng.gamma(8.0, 1.0 / 8.0, (b, k_max))
    raw = np.where(present, -np.sort(-np.where(present, raw, 0.0), axis=1), 0.0)
    weights = raw / raw.sum(axis=1, keepdims=True)

    # Long-term interest: a sub-topic whose parent topic no recent interest shares.
    parents = np.where(present, interests // n_s, -1)
    topic_taken = np.zeros((b, n_t), dtype=bool)
    rows = np.repeat(np.arange(b), k_max)
    topic_taken[rows[parents.ravel() >= 0], parents.ravel()[parents.ravel() >= 0]] = True
    sub_taken = topic_taken[:, np.arange(world.n_subtopics) // n_s]
    keys = np.where(sub_taken, -np.inf, log_mass + rng.gumbel(size=log_mass.shape))
    candidate = np.argmax(keys, axis=1)
    wants = rng.random(b) < cfg.long_term_share
    long_term = np.where(wants & ~sub_taken.all(axis=1), candidate, -1).astype(np.int64)
    long_term_weight = np.where(long_term >= 0, rng.uniform(*LONG_TERM_WEIGHT, b), 0.0)
    weights *= (1.0 - long_term_weight)[:, None]

    # Follows: slots 0..K-1 for the interests' parents (first occurrence only),
    # slot K for the long-term topic, slot K+1 for a noise topic.
    first = present.copy()
    for j in range(1, k_max):
        first[:, j] &= ~(parents[:, :j] == parents[:, j : j + 1]).any(axis=1)
    p_follow = np.where(np.arange(k_max) == 0, FOLLOW_HEAD_P, FOLLOW_OTHER_P)
    follows_interest = first & (rng.random((b, k_max)) < p_follow)
    lt_topic = np.where(long_term >= 0, long_term // n_s, -1)
    nothing = ~follows_interest.any(axis=1) & (lt_topic < 0)
    follows_interest[:, 0] |= nothing  # everyone follows at least one topic
    taken = topic_taken.copy()
    taken[np.flatnonzero(lt_topic >= 0), lt_topic[lt_topic >= 0]] = True
    noise_keys = np.where(taken, -np.inf, rng.random((b, n_t)))
    noise_topic = np.argmax(noise_keys, axis=1)
    noise_ok = (rng.random(b) < FOLLOW_NOISE_P) & ~taken.all(axis=1)
    follow_topic = np.concatenate(
        (
            np.where(follows_interest, parents, -1),
            lt_topic[:, None],
            np.where(noise_ok, noise_topic, -1)[:, None],
        ),
        axis=1,
    ).astype(np.int64)
    follow_reason = np.concatenate(
        (np.zeros((b, k_max), np.int64), np.ones((b, 1), np.int64), np.full((b, 1), 2, np.int64)),
        axis=1,
    )

    # New users sign up during the last day, follow topics then, and act after.
    is_new = segment == NEW
    signup = np.where(is_new, end - SECONDS_PER_DAY + rng.integers(0, 3600, b), start)
    n_f = follow_topic.shape[1]
    before = start - rng.integers(SECONDS_PER_DAY, 365 * SECONDS_PER_DAY, (b, n_f))
    followed_at = np.where(is_new[:, None], signup[:, None], before)
    unfollow = (rng.random((b, n_f)) < UNFOLLOW_P) & ~is_new[:, None] & (follow_reason != 1)
    unfollow_ts = start + rng.integers(0, end - start, (b, n_f))
    unfollowed_at = np.where(unfollow & (follow_topic >= 0), unfollow_ts, -1)
    return Users(
        index=index,
        segment=segment,
        interests=interests.astype(np.int64),
        weights=weights,
        long_term=long_term,
        long_term_weight=long_term_weight,
        follow_topic=follow_topic,
        follow_reason=follow_reason,
        followed_at=followed_at.astype(np.int64),
        unfollowed_at=unfollowed_at.astype(np.int64),
        signup=signup.astype(np.int64),
    )
