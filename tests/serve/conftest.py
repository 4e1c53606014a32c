"""Shared fixtures of the serving tests: a tiny world and a 20-step trained run, once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from multiembed.config import Config
from multiembed.data import prepare_dataset
from multiembed.serve import ServingBundle, build_bundle
from multiembed.train import train
from tests.train.train_helpers import TINY_WORLD, tiny_config


@pytest.fixture(scope="session")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(run_dir, data_dir)``: the tiny synthetic world and a DCM run of 20 steps."""
    root = tmp_path_factory.mktemp("serve")
    data, run = root / "data", root / "run"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=TINY_WORLD))
    threads = torch.get_num_threads()
    try:
        train(tiny_config(max_steps=20), data, run)
    finally:
        torch.set_num_threads(threads)
    return run, data


@pytest.fixture(scope="session")
def bundle(served_run: tuple[Path, Path]) -> ServingBundle:
    run, data = served_run
    return build_bundle(run, data, "HNSW32")
