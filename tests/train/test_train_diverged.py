"""A non-finite loss or gradient stops the run: step and tensor named, checkpoint kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from multiembed.nn.retrieval import RetrievalModel
from multiembed.train import TrainingDivergedError, _checkpoint, _safetensors, train
from tests.train.train_helpers import run_cli, tiny_config, write_config


def _checkpoint_step(run: Path) -> int:
    document = _safetensors.read(_checkpoint.checkpoint_path(run), _checkpoint.KIND)[1]
    return int(document["position"]["step"])


def test_absurd_learning_rate_stops_the_cli_with_the_step_named(tiny_data: Path, tmp_path: Path):
    config = write_config(tmp_path / "bad.toml", tiny_config(lr=1e30, checkpoint_every=1))
    run = tmp_path / "run"
    result = run_cli(
        "train", "--data", str(tiny_data), "--out", str(run), "--config", str(config),
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == TrainingDivergedError.exit_code == 3
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("error: training diverged at step 2: non-finite loss")
    assert "the last good checkpoint is kept at" in result.stderr
    assert _checkpoint_step(run) == 1  # the step before the failure
    assert not (run / "manifest.json").exists()


def test_non_finite_gradient_names_the_parameter(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """From step 3 on, the loss gets a term worth 0 whose gradient is NaN (0 * d sqrt(0))."""
    real = RetrievalModel.eq9
    calls = {"n": 0}

    def poisoned(self, user_emb, *args, **kwargs):
        calls["n"] += 1
        rows = real(self, user_emb, *args, **kwargs)
        if calls["n"] < 3:
            return rows
        return rows + 0.0 * torch.sqrt(user_emb - user_emb.detach()).sum()

    monkeypatch.setattr(RetrievalModel, "eq9", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError) as err:
        train(tiny_config(checkpoint_every=1, max_steps=10), tiny_data, run, progress=False)
    assert err.value.step == 3, str(err.value)
    assert err.value.tensor.startswith("user_tower.")  # only the user tower made `user_emb`
    assert str(err.value).startswith(
        f"training diverged at step 3: non-finite gradient of {err.value.tensor} "
        "(gradient norm nan)"
    )
    assert err.value.checkpoint == str(_checkpoint.checkpoint_path(run))
    assert _checkpoint_step(run) == 2


def test_overflowing_gradient_norm_is_named_when_every_gradient_is_finite(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Gradients near 1e20 are finite, the sum of their squares is not: a message, no crash."""
    real = RetrievalModel.eq9

    def huge(self, user_emb, *args, **kwargs):
        return real(self, user_emb, *args, **kwargs) + 1e20 * user_emb.sum()

    monkeypatch.setattr(RetrievalModel, "eq9", huge)
    with pytest.raises(TrainingDivergedError) as err:
        train(tiny_config(max_steps=3), tiny_data, tmp_path / "run", progress=False)
    assert err.value.step == 1
    assert err.value.tensor == "gradient norm (every gradient finite; their total overflows)"
    assert "(gradient norm inf)" in str(err.value)
