"""Fixtures of the ONNX export tests: the tiny synthetic world and short training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from multiembed.train import train
from tests.train.conftest import tiny_data
from tests.train.train_helpers import tiny_config

__all__ = ["tiny_data", "trained"]


def trained(data: Path, run: Path, model: dict[str, Any], steps: int = 5) -> Path:
    """A run of `model` trained for a few steps on `data` (weights away from their init)."""
    train(tiny_config(model, epochs=1, max_steps=steps), data, run, progress=False)
    return run


@pytest.fixture(scope="session")
def dcm_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained(tiny_data, tmp_path_factory.mktemp("onnx_dcm") / "run", {"name": "dcm"})
