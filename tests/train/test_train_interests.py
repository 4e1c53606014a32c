"""train.select_interests: the number of interests a run serves, chosen on validation users."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from multiembed.config import Config
from multiembed.nn.features import ItemFeatures
from multiembed.runs import _load, trainable_from_config
from multiembed.train import _finish, _interests, load_run, model_from_config, train
from multiembed.train._interests import InterestChoice, choose_interests
from tests.train.train_helpers import tiny_config

FEATURES = ItemFeatures(n_items=40)


class ByK:
    """A stand-in `Validator`: per-user recalls by the model's K, and the models seen."""

    def __init__(self, recalls: dict[int, list[float]]) -> None:
        self.recalls = recalls
        self.seen: list[torch.nn.Module] = []

    def user_recall(self, model: torch.nn.Module, n: int) -> np.ndarray:
        assert n == 50
        self.seen.append(model)
        return np.array(self.recalls[model.k], dtype=np.float64)


def choose(recalls: dict[int, list[float]], **model: object) -> InterestChoice | None:
    config = tiny_config(model)
    trained = model_from_config(config, FEATURES, n_topics=0)
    return choose_interests(config, trained, ByK(recalls), features=FEATURES, n_topics=0)  # type: ignore[arg-type]


def test_the_whole_history_query_is_served_where_it_scores_better():
    choice = choose({3: [0.2, 0.3, 0.1, 0.4], 1: [0.3, 0.35, 0.2, 0.45]})
    assert choice is not None
    assert (choice.trained_k, choice.served_k, choice.users) == (3, 1, 4)
    assert choice.scores == pytest.approx({1: 0.325, 3: 0.25})


def test_the_trained_k_is_kept_where_it_scores_better_or_equal():
    assert choose({3: [0.3, 0.4], 1: [0.3, 0.3]}).served_k == 3  # type: ignore[union-attr]
    assert choose({3: [0.3, 0.4], 1: [0.4, 0.3]}).served_k == 3  # type: ignore[union-attr]


def test_users_without_an_unseen_target_are_left_out():
    nan = float("nan")
    choice = choose({3: [0.2, nan, 0.1, 0.4], 1: [nan] * 4})
    assert choice is not None
    assert (choice.served_k, choice.users, choice.scores[1]) == (3, 3, None)
    assert choose({3: [0.2, nan], 1: [0.3, 0.9]}).served_k == 1  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "model",
    [{"name": "self_attention"}, {"global_interest": True}, {"k": 1}, {"kind": "explicit"}],
    ids=["weights-depend-on-k", "global-interest", "one-interest", "explicit"],
)
def test_k_stays_fixed_where_it_cannot_change(model: dict[str, object]):
    config = tiny_config(model)
    features = ItemFeatures(n_items=40, topics=torch.zeros(40, 1, dtype=torch.long))
    trained = trainable_from_config(config, features, n_topics=3)
    validator = ByK({k: [0.9, 0.9] if k == 1 else [0.0, 0.1] for k in range(1, 5)})
    chosen = choose_interests(config, trained, validator, features=features, n_topics=3)  # type: ignore[arg-type]
    assert chosen is None


def test_each_candidate_has_the_trained_weights():
    config = tiny_config()
    trained = model_from_config(config, FEATURES, n_topics=0)
    with torch.no_grad():  # weights a fresh model of the same seed does not have
        for p in trained.parameters():
            p.add_(torch.randn_like(p))
    validator = ByK({k: [0.1, 0.2] for k in (1, 3)})
    choose_interests(config, trained, validator, features=FEATURES, n_topics=0)  # type: ignore[arg-type]
    assert sorted(m.k for m in validator.seen) == [1, 3]
    for m in validator.seen:
        for name, value in trained.state_dict().items():
            assert torch.equal(m.state_dict()[name], value), name


def test_a_run_serves_the_chosen_k_and_keeps_the_trained_one_in_its_config(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    chosen = InterestChoice(trained_k=3, served_k=1, scores={1: 0.5, 2: 0.2, 3: 0.3}, users=7)
    monkeypatch.setattr(_finish, "choose_interests", lambda *a, **kw: chosen)
    config = tiny_config(max_steps=4, select_interests=True)
    result = train(config, tiny_data, tmp_path / "run", progress=False)
    assert result.interests == chosen
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training"]["interests"]["served_k"] == 1
    assert manifest["training"]["interests"]["scores"] == {"1": 0.5, "2": 0.2, "3": 0.3}
    assert "k = 3" in (tmp_path / "run" / "config.toml").read_text()
    run = load_run(tmp_path / "run")
    assert (run.config.model.k, run.model.k) == (1, 1)


def test_a_manifest_without_a_choice_serves_the_trained_k():
    config = tiny_config()
    assert _load._served(config, {"training": {}}) is config
    assert _load._served(config, {"training": {"interests": {"served_k": 2}}}).model.k == 2


def test_the_selection_runs_by_default_and_is_recorded(tiny_data: Path, tmp_path: Path):
    assert Config().train.select_interests
    config = tiny_config(max_steps=4, select_interests=True)
    result = train(config, tiny_data, tmp_path / "run", progress=False)
    assert result.interests is not None
    assert sorted(result.interests.scores) == [1, 3]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training"]["interests"]["trained_k"] == 3
    off = tiny_config(max_steps=4, select_interests=False)
    assert train(off, tiny_data, tmp_path / "off", progress=False).interests is None


def _wins_at_once(monkeypatch: pytest.MonkeyPatch, wins: bool = True) -> list[int]:
    """The one embedding wins (or never wins) at every validation; returns the K each
    choice saw."""
    seen: list[int] = []

    def fake(config, model, validator, **kw):  # type: ignore[no-untyped-def]
        seen.append(model.k)
        served = 1 if wins else config.model.k
        return InterestChoice(config.model.k, served, {1: 0.5, config.model.k: 0.4}, 7)

    monkeypatch.setattr(_interests, "choose_interests", fake)
    return seen


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "weights.safetensors")


def test_a_run_trains_the_one_embedding_once_it_wins_during_training(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    seen = _wins_at_once(monkeypatch)
    config = tiny_config(select_interests=True, select_during=True, keep="last")
    result = train(config, tiny_data, tmp_path / "run", progress=False)
    assert seen == [3]  # chosen at the first validation, never asked again
    assert result.interests is not None
    assert result.interests.served_k == 1
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    first = next(json.loads(x) for x in lines if "validation" in json.loads(x))
    assert result.interests.step == first["step"] < result.steps
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["training"]["interests"]["step"] == first["step"]
    assert load_run(tmp_path / "run").model.k == 1

    # the steps after the choice trained the one embedding: other weights than K = 3's
    _wins_at_once(monkeypatch, wins=False)
    kept = train(config, tiny_data, tmp_path / "kept", progress=False)
    assert kept.interests is not None
    assert kept.interests.step is None
    a, b = _weights(tmp_path / "run"), _weights(tmp_path / "kept")
    assert not all(torch.equal(a[k], b[k]) for k in a)


def test_select_checks_compare_k_with_one_between_the_epochs_validations(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    seen = _wins_at_once(monkeypatch, wins=False)
    config = tiny_config(select_interests=True, select_during=True, select_checks=3, keep="last")
    result = train(config, tiny_data, tmp_path / "kept", progress=False)
    assert result.epochs == 2
    assert result.steps >= 2 * 3
    assert seen == [3] * 6  # three checks an epoch, the last with its validation

    seen = _wins_at_once(monkeypatch)
    won = train(config, tiny_data, tmp_path / "won", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "won" / "metrics.jsonl").read_text().splitlines()]
    per_epoch = next(x["step"] for x in lines if "validation" in x)
    assert per_epoch == result.steps // 2
    assert seen == [3]
    assert won.interests is not None
    assert won.interests.step == -(-per_epoch // 3)  # the first batch at or past a third


@pytest.mark.parametrize("checks", [1, 3])
def test_a_run_resumed_after_the_choice_is_bit_identical(
    tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: int
):
    _wins_at_once(monkeypatch)
    during = {"select_interests": True, "select_during": True, "select_checks": checks}
    config = tiny_config(keep="last", **during)
    whole = train(config, tiny_data, tmp_path / "whole", progress=False)
    assert whole.interests is not None
    assert whole.interests.step is not None
    stop = whole.interests.step + 3
    cut = tiny_config(keep="last", max_steps=stop, **during)
    assert train(cut, tiny_data, tmp_path / "run", progress=False).steps == stop
    resumed = train(config, tiny_data, tmp_path / "run", progress=False)
    assert resumed.resumed_from == stop
    assert resumed.interests == whole.interests
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)
