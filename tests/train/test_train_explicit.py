"""Training a Conditional Retrieval model (``model.kind = "explicit"``) with the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from multiembed.errors import ConfigError
from multiembed.eval.evaluate import evaluate
from multiembed.nn.conditional import ConditionalRetrievalModel, ItemInterest, SourceInterest
from multiembed.runs import write_manifest
from multiembed.train import _checkpoint, _safetensors, load_run, train
from multiembed.train._distributed import DistContext
from multiembed.train._objective import ConditionalObjective
from tests.train.train_helpers import tiny_config

STEPS = 30


def _config(condition: str, **train_overrides: object):
    return tiny_config(
        {"kind": "explicit", "condition": condition}, **{"max_steps": STEPS, **train_overrides}
    )


@pytest.fixture(scope="module")
def source_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("explicit") / "run"
    result = train(_config("source"), tiny_data, run, progress=False)
    assert result.steps == STEPS
    return run


def test_explicit_run_trains_and_counts_examples_without_condition(source_run: Path):
    manifest = json.loads((source_run / "manifest.json").read_text())
    assert manifest["kind"] == "explicit"
    assert manifest["model"] == "cr_source"
    assert manifest["model_version"].startswith("cr_source-")
    training = manifest["training"]
    # the synthetic home feed logs no topic: those examples are dropped and counted
    assert 0 < training["examples_without_condition"] < training["examples"] == STEPS * 64
    lines = [json.loads(x) for x in (source_run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == STEPS
    assert lines[-1]["examples_without_condition"] == training["examples_without_condition"]
    assert all(0 < r["kept"] <= 64 for r in lines)
    assert all(r["loss"] > 0 for r in lines)
    assert lines[-1]["loss_avg"] < lines[0]["loss_avg"]  # it learns


def test_load_run_round_trip(source_run: Path):
    run = load_run(source_run)
    assert isinstance(run.model, ConditionalRetrievalModel)
    assert isinstance(run.model.association, SourceInterest)
    assert not run.model.training
    assert run.config.model.kind == "explicit"
    weights = _safetensors_weights(source_run)
    for name, value in run.model.state_dict().items():
        assert torch.equal(value, weights[name]), name


def _safetensors_weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "weights.safetensors"))


def test_manifest_kind_must_match_config(source_run: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(source_run, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["kind"] = "implicit"
    write_manifest(copy, manifest)
    from multiembed.train import RunIntegrityError

    with pytest.raises(RunIntegrityError, match=r"kind 'implicit' does not match config\.toml"):
        load_run(copy)


def test_evaluate_explicit_run_gives_filtered_metrics(source_run: Path, tiny_data: Path):
    report = evaluate(source_run, tiny_data, progress=False)
    assert report["models"] == {"implicit": False, "explicit": True}
    metrics = report["segments"]["all"]["metrics"]
    for name in ("filtered_hr@100", "filtered_hr@1000", "explicit_hr@100"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["filtered_hr@100"] >= metrics["explicit_hr@100"]  # the filter only helps
    assert set(report["segments"]) == {"all", "core", "non_core", "new"}
    assert (source_run / "eval.json").is_file()


def test_item_interest_generator_is_checkpointed_and_resume_is_identical(
    tiny_data: Path, tmp_path: Path
):
    config = _config("item", max_steps=12, checkpoint_every=4)
    whole = train(config, tiny_data, tmp_path / "whole", progress=False)
    part = tmp_path / "part"
    train(_config("item", max_steps=7, checkpoint_every=4), tiny_data, part, progress=False)
    tensors, document = _safetensors.read(_checkpoint.checkpoint_path(part), _checkpoint.KIND)
    assert "rng.model.association.generator" in tensors
    assert document["position"]["step"] == 7
    # every item of the world carries a topic: the item association always gives one
    assert document["position"]["without_condition"] == 0
    assert document["position"]["examples"] == 7 * 64
    resumed = train(config, tiny_data, part, progress=False)
    assert resumed.resumed_from == 7
    assert resumed.final_loss == whole.final_loss
    a, b = load_run(tmp_path / "whole"), load_run(part)
    assert isinstance(a.model.association, ItemInterest)
    assert a.model_version == b.model_version


def test_examples_without_condition_survive_a_resume(tiny_data: Path, tmp_path: Path):
    """The count is part of the checkpoint: a resumed run reports what an uninterrupted one does."""
    whole = tmp_path / "whole"
    train(_config("source", max_steps=12, checkpoint_every=4), tiny_data, whole, progress=False)
    part = tmp_path / "part"
    train(_config("source", max_steps=7, checkpoint_every=4), tiny_data, part, progress=False)
    _, document = _safetensors.read(_checkpoint.checkpoint_path(part), _checkpoint.KIND)
    at_7 = _training(part)["examples_without_condition"]
    assert document["position"]["without_condition"] == at_7 > 0
    train(_config("source", max_steps=12, checkpoint_every=4), tiny_data, part, progress=False)
    want, got = _training(whole), _training(part)
    assert got["examples_without_condition"] == want["examples_without_condition"] > at_7
    assert got["examples"] == want["examples"] == 12 * 64


def _training(run: Path) -> dict[str, int]:
    training: dict[str, int] = json.loads((run / "manifest.json").read_text())["training"]
    return training


def test_explicit_kind_refuses_data_parallel():
    model = torch.nn.Module()
    ctx = DistContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ConfigError, match="data parallel training is not supported"):
        ConditionalObjective(model, ctx)  # type: ignore[arg-type]


def test_explicit_kind_refuses_followed_topics(tiny_data: Path, tmp_path: Path):
    config = tiny_config({"kind": "explicit", "followed_topics": True}, max_steps=1)
    with pytest.raises(ConfigError, match=r"model\.followed_topics = true"):
        train(config, tiny_data, tmp_path / "run", progress=False)
