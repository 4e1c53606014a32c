"""`SyntheticAdapter`: the synthetic world behind the dataset-adapter protocol."""

from __future__ import annotations

from functools import cached_property, partial
from pathlib import Path

from multiembed.config.sections import SyntheticConfig
from multiembed.data.adapters.base import RawDataset
from multiembed.data.quarantine import Quarantine
from multiembed.data.synthetic._policy import (
    HOME_EXPLORE_SHARE,
    LEGACY_TRIES,
)
from multiembed.data.synthetic._tables import (
    engagement_batches,
    item_batches,
    user_topic_batches,
    write_world_ground_truth,
)
from multiembed.data.synthetic._world import (
    N_CREATOR_BUCKETS,
    N_FORMATS,
    World,
    generate_world,
)


class SyntheticAdapter:
    """Generates the synthetic world as raw tables; the `source` path is ignored.

    The constructor only stores the config; the world (topics and items) is
    built on the first `read` or `write_ground_truth` and kept in `world_`.
    Users and engagements are never held: every stream regenerates them block
    by block (2000 users per engagement batch), so memory stays bounded at any
    `n_users`.

    >>> from multiembed.config.sections import SyntheticConfig
    >>> raw = SyntheticAdapter(SyntheticConfig(n_users=20, n_items=300, n_topics=3)).read()
    >>> batch = next(raw.engagements())
    >>> batch.schema.names
    ['user_id', 'item_id', 'ts', 'action', 'source_topic', '_file', '_row']
    >>> raw.topic_parents["4"], raw.topic_names["4"]
    ('1', 'topic_00/sub_0')
    """

    name = "synthetic"

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config

    @cached_property
    def world_(self) -> World:
        return generate_world(self.config)

    def read(self, source: Path | None = None, quarantine: Quarantine | None = None) -> RawDataset:
        """The world's raw tables as streams; nothing is generated until a stream is iterated.

        `source` and `quarantine` exist for the adapter protocol: generation
        reads no file and produces no structurally broken rows.
        """
        del source, quarantine
        world = self.world_
        cfg = self.config

        return RawDataset(
            name=self.name,
            items=partial(item_batches, world),
            engagements=partial(engagement_batches, world),
            user_topics=partial(user_topic_batches, world),
            vector_dim=cfg.vector_dim,
            n_categorical=2,
            ts_window=world.window,
            topic_names=world.topic_names(),
            topic_parents=world.topic_parents(),
            integer_ids=True,
            notes=(
                f"synthetic world, seed {cfg.seed}: {cfg.n_users} users, {cfg.n_items} items, "
                f"{cfg.n_topics} topics x {cfg.subtopics_per_topic} sub-topics",
                "items: topics = topic, sub-topic (and a secondary topic for some); "
                f"categorical = format (0..{N_FORMATS - 1}), "
                f"creator bucket (0..{N_CREATOR_BUCKETS - 1}); null vector = invalid item",
                f"logging policy: legacy inverted-index retriever over followed topics "
                f"(share {cfg.legacy_share} of slots, {LEGACY_TRIES} items shown, logs "
                f"source_topic) + implicit home feed ({HOME_EXPLORE_SHARE:.0%} exploration)",
                "user_topics.followed_at predates the engagement window (except new users, "
                "who sign up on the last day)",
                "true interests, follows and item topics: ground_truth/ "
                "(SyntheticAdapter.write_ground_truth)",
            ),
        )

    def write_ground_truth(self, out_dir: Path) -> Path:
        """Writes `out_dir/ground_truth/*.parquet` and returns that folder.

        See `write_ground_truth` for the files.
        """
        return write_world_ground_truth(self.world_, Path(out_dir))


def write_ground_truth(config: SyntheticConfig, out_dir: Path) -> Path:
    """Writes the ground truth of the world of `config` under `out_dir/ground_truth`.

    Files: `topics`, `items`, `users`, `user_interests`, `followed` (Parquet,
    raw keys); see `multiembed.data.synthetic._tables.write_world_ground_truth`.
    """
    return SyntheticAdapter(config).write_ground_truth(out_dir)
