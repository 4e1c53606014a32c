"""Helpers of the training tests: the tiny synthetic world, tiny configs, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from multiembed.config import Config, SyntheticConfig, parse, to_dict
from multiembed.runs._toml import dumps

TINY_WORLD = SyntheticConfig(n_users=200, n_items=1500, n_topics=6, subtopics_per_topic=2)


def tiny_config(model: dict[str, Any] | None = None, **train: Any) -> Config:
    """Model D = 16, K = 3, L = 12, batch 64, single-threaded, lr 3e-3 (tens of steps must
    show learning), K served as trained (``select_interests = false``: a run's loaded
    model is the one it trained); ``train`` overrides the loop."""
    return parse(
        Config,
        {
            "synthetic": to_dict(TINY_WORLD),
            "examples": {"seq_len": 12},
            "model": {"k": 3, "dim": 16, "id_dim": 8, "hidden_dim": 16, **(model or {})},
            "train": {
                "batch_size": 64,
                "epochs": 2,
                "checkpoint_every": 25,
                "log_every": 5,
                "threads": 1,
                "lr": 3e-3,
                "select_interests": False,
                **train,
            },
        },
    )


def write_config(path: Path, config: Config) -> Path:
    path.write_text(dumps(to_dict(config)))
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m multiembed ARGS``; torch single-threaded, as in the test process."""
    return subprocess.run(
        [sys.executable, "-m", "multiembed", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
