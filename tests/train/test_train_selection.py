"""Model selection: early stopping keeps the best validation's weights, and resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from multiembed.train import _loop, train
from multiembed.train._validation import Validation
from tests.train.train_helpers import tiny_config

# validation HR@100 of the i-th validation: best at the 2nd (step 40), then two worse ones
SCORES = [0.1, 0.3, 0.2, 0.25, 0.9, 0.9]
CONFIG = tiny_config(epochs=3, validate_every=20, patience=2)


class ScriptedValidator:
    """Stands in for `Validator`: the i-th call since `reset` scores ``SCORES[i]``."""

    calls = 0

    def __init__(self, config: object, data_dir: Path) -> None:
        pass

    def load(self) -> float:
        return 0.0

    def __call__(self, model: torch.nn.Module) -> Validation:
        ScriptedValidator.calls += 1
        score = SCORES[ScriptedValidator.calls - 1]
        return Validation({"hr@100": score}, records=1, seconds=0.0, score=score)

    @classmethod
    def reset(cls) -> None:
        cls.calls = 0


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    ScriptedValidator.reset()
    monkeypatch.setattr(_loop, "Validator", ScriptedValidator)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "weights.safetensors")


def test_early_stopping_keeps_the_best_validation_weights(scripted, tiny_data: Path, tmp_path):
    run = tmp_path / "run"
    result = train(CONFIG, tiny_data, run, progress=False)
    assert result.stopped_early
    assert result.complete
    assert result.steps == 80  # validations at 20, 40 (best), 60, 80: two without a better one
    assert result.best_step == 40
    assert result.best_score == 0.3
    manifest = json.loads((run / "manifest.json").read_text())
    selection = manifest["training"]["selection"]
    assert selection["best_step"] == 40
    assert selection["best_epoch"] == 0
    assert selection["stopped_at"] == 80
    assert selection["weights"] == "best"
    # the kept weights are the trajectory's at step 40 (validation never moves it)
    plain = tmp_path / "plain"
    train(tiny_config(max_steps=40, validation=False), tiny_data, plain, progress=False)
    a, b = _weights(run), _weights(plain)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_keep_last_writes_the_last_steps_weights(scripted, tiny_data: Path, tmp_path):
    run = tmp_path / "run"
    last = tiny_config(epochs=3, validate_every=20, patience=2, keep="last")
    result = train(last, tiny_data, run, progress=False)
    assert result.best_step is None
    plain = tmp_path / "plain"
    train(tiny_config(max_steps=80, validation=False), tiny_data, plain, progress=False)
    a, b = _weights(run), _weights(plain)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_an_interruption_selects_the_same_weights(scripted, tiny_data: Path, tmp_path):
    whole = tmp_path / "whole"
    train(CONFIG, tiny_data, whole, progress=False)
    ScriptedValidator.reset()  # the interrupted run meets the same scores
    run = tmp_path / "run"
    first = train(tiny_config(epochs=3, validate_every=20, patience=2, max_steps=50), tiny_data,
                  run, progress=False)  # fmt: skip
    assert not first.stopped_early
    assert first.best_step == 40
    second = train(CONFIG, tiny_data, run, progress=False)
    assert second.resumed_from == 50
    assert second.stopped_early
    assert second.best_step == 40
    a, b = _weights(whole), _weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((r / "manifest.json").read_text()) for r in (whole, run))
    assert ma["model_version"] == mb["model_version"]
    assert ma["training"]["selection"] == mb["training"]["selection"]
