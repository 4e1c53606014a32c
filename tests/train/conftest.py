"""Shared fixture of the training tests: a tiny prepared synthetic world."""

from __future__ import annotations

from pathlib import Path

import pytest

from multiembed.config import Config
from multiembed.data import prepare_dataset
from multiembed.train import training_examples
from tests.train.train_helpers import TINY_WORLD, tiny_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic world, prepared, with its training examples already cached."""
    data = tmp_path_factory.mktemp("tiny") / "data"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=TINY_WORLD))
    training_examples(tiny_config(), data, data / ".cache")
    return data
