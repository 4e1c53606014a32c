"""Helpers of the experiment tests: the tiny synthetic world and a tiny config."""

from __future__ import annotations

from typing import Any

from multiembed.config import Config, SyntheticConfig, parse, to_dict

TINY_WORLD = SyntheticConfig(n_users=200, n_items=1500, n_topics=6, subtopics_per_topic=2)


def tiny_config(**model: Any) -> Config:
    """D = 16, K = 3, L = 12, 20 steps of batch 64, a 300-record evaluation."""
    return parse(
        Config,
        {
            "synthetic": to_dict(TINY_WORLD),
            "examples": {"seq_len": 12},
            "model": {"k": 3, "dim": 16, "id_dim": 8, "hidden_dim": 16, **model},
            "train": {
                "batch_size": 64,
                "max_steps": 20,
                "checkpoint_every": 50,
                "log_every": 5,
                "threads": 1,
            },
            "eval": {"corpus_size": 800, "ks": [10, 50, 100], "budget": 50, "max_users": 300},
        },
    )
