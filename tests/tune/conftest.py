"""Shared fixtures of the search tests: the tiny prepared world and a fast base config."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiembed.config import Config, load_config
from multiembed.data import prepare_dataset
from tests.train.train_helpers import TINY_WORLD

BASE_TOML = """
[examples]
seq_len = 12
[model]
k = 3
dim = 16
id_dim = 8
hidden_dim = 16
[train]
batch_size = 64
max_steps = 40
validate_every = 10
checkpoint_every = 1000
log_every = 10
threads = 1
"""
"""Trials of 40 steps, validated every 10: four validations, about 3 s each on one core."""


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("tune") / "data"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=TINY_WORLD))
    return data


@pytest.fixture(scope="session")
def base_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "base.toml"
    path.write_text(BASE_TOML, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def base(base_file: Path) -> Config:
    return load_config(base_file)
