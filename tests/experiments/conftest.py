"""Shared fixture of the experiment tests: a tiny prepared world."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiembed.config import Config
from multiembed.data import prepare_dataset
from tests.experiments.experiment_helpers import TINY_WORLD, tiny_config

__all__ = ["TINY_WORLD", "tiny_config", "tiny_data"]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("experiments") / "data"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=TINY_WORLD))
    return data
