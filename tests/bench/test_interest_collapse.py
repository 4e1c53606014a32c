"""`bench/interest_collapse.py` on a tiny trained DCM run: one line per stage, sane figures."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from multiembed.config import Config
from multiembed.data import prepare_dataset
from multiembed.train import train
from tests.train.train_helpers import TINY_WORLD, tiny_config

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "interest_collapse", BENCH / "interest_collapse.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_stage_reports_its_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=TINY_WORLD))
    train(tiny_config(max_steps=5), data, tmp_path / "run", progress=False)
    bench = load_bench()
    monkeypatch.setattr(sys, "argv", ["x", str(tmp_path / "run"), str(data), "--users", "50"])
    bench.main()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    routing = {line["affinity"]: line for line in lines if line["stage"] == "routing"}
    assert set(routing) == {"dot", "cosine"}
    for line in routing.values():
        assert 1 <= line["clusters_kept"] <= line["clusters_used"] <= line["k"] == 3
    cosines = {line["of"]: line for line in lines if line["stage"] == "cosine"}
    assert set(cosines) == {"conditions", "conditions_in_item_space", "embeddings"}
    assert all(-1 <= line["mean_pairwise"] <= 1 for line in cosines.values())
    assert 1 <= cosines["embeddings"]["interests_per_user"] <= 3
    assert [line["stage"] for line in lines][-1] == "items"


def test_histories_are_each_users_latest_positive_engagements(tmp_path: Path) -> None:
    bench = load_bench()
    data = tmp_path / "data"
    prepare_dataset("synthetic", None, data, config=Config(synthetic=TINY_WORLD))
    ids = bench.histories(data, 7, 4)
    assert ids.shape == (7, 4)
    assert bool((ids >= 0).any(dim=1).all())
    # right-aligned: once a row has an item, every later slot has one
    filled = ids >= 0
    assert bool((filled[:, 1:] >= filled[:, :-1]).all())
