"""Validation during training: HR@K lines in metrics.jsonl that leave the trajectory untouched."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from multiembed.errors import DataError
from multiembed.eval import evaluate as evaluate_module
from multiembed.eval._records import load_eval_data
from multiembed.eval.evaluate import evaluate_model
from multiembed.runs import load_item_features, load_run, model_from_config, n_topic_ids
from multiembed.train import _rng, _validation, train
from multiembed.train._validation import Validator, validation_ks
from tests.train.train_helpers import tiny_config

STEPS = 30
EVERY = 10
# keep = "last" and no early stopping: the weights are the trajectory's, comparable with a
# run that never validates
CONFIG = tiny_config(
    max_steps=STEPS, validate_every=EVERY, validation_records=300, keep="last", patience=0
)
TIMING = {"examples_per_s", "validation_s"}


def _lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def validated(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("validated") / "run"
    train(CONFIG, tiny_data, run, progress=False)
    return run


def test_validation_lines_every_validate_every_steps(validated: Path):
    checks = [r for r in _lines(validated) if "validation" in r]
    assert [r["step"] for r in checks] == [10, 20, 30]
    assert validation_ks(CONFIG) == (50, 100, 1000)
    for r in checks:
        assert set(r) == {
            "step", "epoch", "validation", "validation_records", "validation_s", "best"
        }  # fmt: skip
        assert r["epoch"] == 0
        assert 0 < r["validation_records"] <= 300  # whole users while they fit
        assert r["validation_s"] > 0
        hr = r["validation"]
        assert list(hr) == ["hr@50", "hr@100", "hr@1000"]
        assert all(0.0 <= v <= 1.0 for v in hr.values())
        assert hr["hr@50"] <= hr["hr@100"] <= hr["hr@1000"]
    assert len({r["validation_records"] for r in checks}) == 1  # one fixed slice
    assert checks[-1]["validation"]["hr@100"] > checks[0]["validation"]["hr@100"]  # it learns


def test_validation_is_on_validation_users_never_the_test_users(
    validated: Path, tiny_data: Path, monkeypatch: pytest.MonkeyPatch
):
    """The last line is eval.json's hr@K of the final model on the validation users' slice."""
    last = [r for r in _lines(validated) if "validation" in r][-1]
    run = load_run(validated)
    c = run.config
    sliced = dataclasses.replace(c.eval, max_users=c.train.validation_records)
    kw = {"split": c.split, "examples": c.examples, "config": sliced}
    valid = load_eval_data(tiny_data, which="valid", **kw)
    test = load_eval_data(tiny_data, which="test", **kw)
    assert len(valid.records) == last["validation_records"]
    assert not np.isin(valid.records.users, test.records.users).any()
    monkeypatch.setattr(evaluate_module, "load_eval_data", lambda *a, **k: valid)
    report = evaluate_model(run.model, tiny_data, progress=False, **kw)
    expected = report["segments"]["all"]["metrics"]
    for name, value in last["validation"].items():
        assert value == expected[name], name


def test_validation_does_not_change_the_trajectory(validated: Path, tiny_data: Path, tmp_path):
    plain = tmp_path / "plain"
    train(tiny_config(max_steps=STEPS, validation=False), tiny_data, plain, progress=False)
    a, b = load_file(validated / "weights.safetensors"), load_file(plain / "weights.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    def training(run: Path) -> list[dict]:
        rows = [r for r in _lines(run) if "validation" not in r]
        return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]

    assert training(validated) == training(plain)
    assert not any("validation" in r for r in _lines(plain))


def test_validator_restores_mode_and_every_rng_state(tiny_data: Path):
    features = load_item_features(tiny_data)
    model = model_from_config(CONFIG, features, n_topics=n_topic_ids(tiny_data))
    model.train()
    torch.manual_seed(123)
    before = _rng.capture(model)[0]
    checked = Validator(CONFIG, tiny_data)(model)
    assert model.training
    after = _rng.capture(model)[0]
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert set(checked.metrics) == {"hr@50", "hr@100", "hr@1000"}
    # a second call on the same weights gives the same numbers (deterministic, same slice)
    assert Validator(CONFIG, tiny_data)(model).metrics == checked.metrics


def test_explicit_model_validates_on_logged_topics(tiny_data: Path, tmp_path: Path):
    config = tiny_config(
        {"kind": "explicit", "condition": "source"},
        max_steps=10,
        validate_every=5,
        validation_records=300,
    )
    run = tmp_path / "run"
    train(config, tiny_data, run, progress=False)
    checks = [r for r in _lines(run) if "validation" in r]
    assert [r["step"] for r in checks] == [5, 10]
    for r in checks:
        assert list(r["validation"]) == ["explicit_hr@50", "explicit_hr@100", "explicit_hr@1000"]
        assert all(v is None or 0.0 <= v <= 1.0 for v in r["validation"].values())
    assert (
        _validation.headline(checks[-1]["validation"])
        == checks[-1]["validation"]["explicit_hr@100"]
    )


def test_unusable_evaluation_data_names_the_setting(tiny_data: Path, tmp_path: Path, monkeypatch):
    def no_records(*args: object, **kwargs: object) -> None:
        raise DataError("data: no examples")

    monkeypatch.setattr(_validation, "load_eval_data", no_records)
    model = model_from_config(
        CONFIG, load_item_features(tiny_data), n_topics=n_topic_ids(tiny_data)
    )
    with pytest.raises(DataError) as err:
        Validator(CONFIG, tiny_data)(model)
    assert str(err.value) == (
        "train.validation = true: model selection needs validation records: data: no "
        "examples (raise split.valid_share, or set train.validation = false to train "
        "without validation)"
    )
    run = tmp_path / "run"
    with pytest.raises(DataError, match=r"^train\.validation = true: "):
        train(CONFIG, tiny_data, run, progress=False)
    assert not (run / "checkpoint").exists()  # it stopped before the first step
    # a run without validation never reads the evaluation data
    short = train(tiny_config(max_steps=9, validation=False), tiny_data, run, progress=False)
    assert short.steps == 9
