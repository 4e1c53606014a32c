"""Shared fixtures of the simulator tests: a small prepared synthetic world."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiembed.config import Config, SyntheticConfig
from multiembed.data import prepare_dataset

#: Enough sub-topics (48) that random items rarely match a user's 2 to 6 interests.
SIM_WORLD = SyntheticConfig(n_users=240, n_items=3000, n_topics=12, subtopics_per_topic=4)


@pytest.fixture(scope="session")
def sim_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("simulate") / "data"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=SIM_WORLD))
    return data
