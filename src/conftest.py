"""Doctest setup of `multiembed.api`: a scratch directory with a tiny prepared world and run.

The API's examples read ``tmp`` (a `pathlib.Path`; ``tmp / "data"`` is the
prepared synthetic world, ``tmp / "run"`` a 3-step run on it) and ``tiny`` (the
small configuration they were made with), so that each example runs in about a
second instead of preparing and training again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "synthetic": {"n_users": 60, "n_items": 300, "n_topics": 4, "subtopics_per_topic": 2},
    "examples": {"seq_len": 8},
    "model": {"k": 2, "dim": 16, "id_dim": 8, "hidden_dim": 16},
    "train": {"batch_size": 32, "threads": 1},
}


@pytest.fixture(scope="session")
def _api_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import multiembed.api as me

    tmp = tmp_path_factory.mktemp("api")
    me.prepare(None, tmp / "data", config=TINY)
    me.train(tmp / "data", tmp / "run", config=TINY, max_steps=3, progress=False)
    return tmp


@pytest.fixture(autouse=True)
def _api_doctest_namespace(request: pytest.FixtureRequest, doctest_namespace: dict) -> None:
    """Adds ``tmp`` and ``tiny`` for the doctests of `multiembed.api` only."""
    if isinstance(request.node, pytest.DoctestItem) and request.node.name.startswith(
        "multiembed.api"
    ):
        doctest_namespace["tmp"] = request.getfixturevalue("_api_world")
        doctest_namespace["tiny"] = TINY
