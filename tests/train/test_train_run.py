"""The run directory: contents, manifest, metrics, load_run round trip, refusals."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from multiembed._files import sha256_file
from multiembed.config import Config, load_toml, to_dict
from multiembed.data.examples import ExampleDataset
from multiembed.runs import _load, data_fingerprint, model_version, n_topic_ids, write_manifest
from multiembed.runs._toml import dumps
from multiembed.train import (
    LoadedRun,
    RunIntegrityError,
    _checkpoint,
    _safetensors,
    load_item_features,
    load_run,
    model_from_config,
    train,
    training_examples,
)
from tests.train.train_helpers import tiny_config

STEPS = 30
CONFIG = tiny_config(max_steps=STEPS, checkpoint_every=10, log_every=4)


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    result = train(CONFIG, tiny_data, run, progress=False)
    assert result.steps == STEPS
    assert not result.complete
    return run


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    return target


def test_run_directory_contents_and_manifest(trained: Path, tiny_data: Path):
    names = {str(p.relative_to(trained)) for p in trained.rglob("*") if p.is_file()}
    vocab = {f"vocab/{p.name}" for p in (tiny_data / "vocab").iterdir()}
    assert names == {
        "config.toml",
        "weights.safetensors",
        "features.safetensors",
        "frequency.safetensors",
        "metrics.jsonl",
        "manifest.json",
        "checkpoint/checkpoint.safetensors",
        *vocab,
    }
    manifest = json.loads((trained / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json", "checkpoint/checkpoint.safetensors"}
    for name, entry in manifest["files"].items():
        assert entry == {
            "sha256": sha256_file(trained / name),
            "bytes": (trained / name).stat().st_size,
        }
    assert manifest["model"] == "dcm"
    assert manifest["model_version"].startswith("dcm-")
    assert manifest["library_version"] == "0.1.0"
    assert manifest["training"]["steps"] == STEPS
    assert load_toml(Config, trained / "config.toml") == CONFIG
    for name in vocab:
        assert (trained / name).read_bytes() == (tiny_data / name).read_bytes()


def test_metrics_lines(trained: Path):
    lines = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [4, 8, 12, 16, 20, 24, 28, 30]
    for r in lines:
        assert set(r) == {
            "step",
            "epoch",
            "loss",
            "loss_avg",
            "batch",
            "lr",
            "examples_per_s",
            "grad_norm",
            "mean_pairwise_cosine",
            "effective_interests",
            "slot_win_share",
        }
        assert r["epoch"] == 0
        assert r["batch"] == CONFIG.train.batch_size  # the tiny world fills every batch
        assert r["lr"] == CONFIG.train.lr
        assert min(r["loss"], r["examples_per_s"], r["grad_norm"]) > 0
        assert 1.0 <= r["effective_interests"] <= 3.0 + 1e-6
        assert -1.0 <= r["mean_pairwise_cosine"] <= 1.0
        assert len(r["slot_win_share"]) == 3
        assert sum(r["slot_win_share"]) == pytest.approx(1.0)
    assert lines[-1]["loss"] < lines[0]["loss"]  # it learns


def _outputs(loaded_model: torch.nn.Module, tiny_data: Path) -> tuple[torch.Tensor, ...]:
    store, _ = training_examples(CONFIG, tiny_data, tiny_data / ".cache")
    batch = ExampleDataset(store)[list(range(0, 640, 10))]
    with torch.no_grad():
        user = loaded_model.embed_users(batch.history, batch.history_valid)
        items = loaded_model.embed_items(torch.arange(100))
    return user.embeddings, user.importance, items


def test_load_run_round_trip_gives_identical_outputs(trained: Path, tiny_data: Path):
    loaded = load_run(trained)
    assert isinstance(loaded, LoadedRun)
    assert not loaded.model.training
    assert loaded.config == CONFIG
    assert loaded.model_version == loaded.manifest["model_version"]
    # The same weights through an independent path: the final checkpoint's tensors.
    tensors, _ = _safetensors.read(_checkpoint.checkpoint_path(trained), _checkpoint.KIND)
    reference = model_from_config(CONFIG, load_item_features(tiny_data), n_topics=18)
    reference.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    reference.eval()
    want = _outputs(reference, tiny_data)
    for got in (_outputs(loaded.model, tiny_data), _outputs(load_run(trained).model, tiny_data)):
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
    from_data = load_run(trained, data_dir=tiny_data)
    for a, b in zip(_outputs(from_data.model, tiny_data), want, strict=True):
        assert torch.equal(a, b)


def test_flipped_byte_in_weights_is_refused(copy: Path):
    path = copy / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(RunIntegrityError, match=r"weights\.safetensors: checksum mismatch"):
        load_run(copy)


def test_truncated_weights_are_refused(copy: Path):
    path = copy / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(RunIntegrityError, match=r"weights\.safetensors: size \d+ bytes, manifest"):
        load_run(copy)


def test_truncated_manifest_is_refused(copy: Path):
    path = copy / "manifest.json"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RunIntegrityError, match=r"manifest\.json: not valid JSON, truncated"):
        load_run(copy)


def test_missing_file_is_refused(copy: Path):
    (copy / "features.safetensors").unlink()
    with pytest.raises(RunIntegrityError, match=r"features\.safetensors: missing"):
        load_run(copy)


def test_config_that_does_not_match_the_weights_is_refused(copy: Path):
    """A config edited consistently with the manifest still has to build these weights."""
    mismatched = tiny_config(model={"dim": 24}, max_steps=STEPS, checkpoint_every=10, log_every=4)
    (copy / "config.toml").write_text(dumps(to_dict(mismatched)))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["config.toml"] = {
        "sha256": sha256_file(copy / "config.toml"),
        "bytes": (copy / "config.toml").stat().st_size,
    }
    write_manifest(copy, manifest)
    with pytest.raises(RunIntegrityError) as err:
        load_run(copy)
    message = str(err.value)
    assert "weights.safetensors: does not match config.toml (model dcm)" in message
    # every differing tensor is named with both shapes
    assert re.search(
        r"\.weight: weights \[16, \d+\] torch\.float32, config builds \[24, \d+\]", message
    )


def test_a_run_written_before_a_setting_existed_loads_as_it_was_trained(
    copy: Path, monkeypatch: pytest.MonkeyPatch
):
    """Its config.toml lacks the key: the version it was written with still verifies,
    and the setting takes the value that reproduces such runs, not today's default."""
    stated = to_dict(load_toml(Config, copy / "config.toml"))
    del stated["model"]["dcm_affinity"]
    manifest = _restate(copy, stated)
    assert load_run(copy).model.user_tower.conditions.extractor.affinity == "dot"
    monkeypatch.setitem(_load.EARLIER_BEHAVIOUR, "model", {"dcm_affinity": "cosine"})
    loaded = load_run(copy)
    assert loaded.model.user_tower.conditions.extractor.affinity == "cosine"
    assert loaded.model_version == manifest["model_version"]


def _restate(run: Path, stated: dict) -> dict:
    """Write ``stated`` as the run's config.toml with a manifest that verifies it."""
    (run / "config.toml").write_text(dumps(stated))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["config.toml"] = {
        "sha256": sha256_file(run / "config.toml"),
        "bytes": (run / "config.toml").stat().st_size,
    }
    manifest["model_version"] = model_version(
        "dcm", stated, manifest["files"]["weights.safetensors"]["sha256"]
    )
    write_manifest(run, manifest)
    return manifest


def test_a_run_stating_a_removed_setting_loads_at_the_value_kept(copy: Path):
    """``model.dcm_whole_rows`` was removed; 0 (every row clustered into K) is what the
    model still does, so a run stating it loads with its own version; another value
    is refused, naming the setting."""
    stated = to_dict(load_toml(Config, copy / "config.toml"))
    stated["model"]["dcm_whole_rows"] = 0.0
    manifest = _restate(copy, stated)
    assert load_run(copy).model_version == manifest["model_version"]
    stated["model"]["dcm_whole_rows"] = 0.5
    _restate(copy, stated)
    with pytest.raises(RunIntegrityError, match="dcm_whole_rows"):
        load_run(copy)


def test_a_run_with_the_weight_names_of_two_user_towers_loads(copy: Path):
    """Runs written before the implicit and explicit towers became one `UserTower` name
    the extractor ``user_tower.extractor`` and the condition field ``condition_proj``
    (``condition_table`` in explicit runs); they load with the same tensors."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save_file

    weights = st_load((copy / "weights.safetensors").read_bytes())
    renamed = {
        "user_tower.conditions.extractor.": "user_tower.extractor.",
        "user_tower.condition_field.": "user_tower.condition_proj.",
    }
    earlier = {}
    for name, tensor in weights.items():
        for new, old in renamed.items():
            name = name.replace(new, old)
        earlier[name] = tensor
    assert "user_tower.condition_proj.weight" in earlier  # (DCM itself has no weights)
    save_file(earlier, str(copy / "weights.safetensors"))
    manifest = json.loads((copy / "manifest.json").read_text())
    sha = sha256_file(copy / "weights.safetensors")
    manifest["files"]["weights.safetensors"] = {
        "sha256": sha,
        "bytes": (copy / "weights.safetensors").stat().st_size,
    }
    stated = to_dict(load_toml(Config, copy / "config.toml"))
    manifest["model_version"] = model_version("dcm", stated, sha)
    write_manifest(copy, manifest)
    state = load_run(copy).model.state_dict()
    assert set(state) == set(weights)
    for name, tensor in weights.items():
        assert torch.equal(state[name], tensor), name
    # explicit runs' topic table; an extractor's weights, and names inside a checkpoint
    earlier = ["user_tower.condition_table.weight", "model.user_tower.extractor.bilinear"]
    earlier += ["rng.model.user_tower.extractor.generator", "best.user_tower.condition_proj.bias"]
    assert list(_load.with_current_names(dict.fromkeys(earlier, tensor))) == [
        "user_tower.condition_field.weight",
        "model.user_tower.conditions.extractor.bilinear",
        "rng.model.user_tower.conditions.extractor.generator",
        "best.user_tower.condition_field.bias",
    ]


def test_data_dir_with_another_item_vocabulary_is_refused(trained: Path, tmp_path: Path):
    other = tmp_path / "data"
    (other / "vocab").mkdir(parents=True)
    table = pq.read_table(trained / "vocab" / "items.parquet").slice(0, 10)
    pq.write_table(table, other / "vocab" / "items.parquet")
    with pytest.raises(RunIntegrityError, match=r"not the data the run .* was trained on"):
        load_run(trained, data_dir=other)


def test_manifest_records_the_data_fingerprint(trained: Path, tiny_data: Path):
    data = json.loads((trained / "manifest.json").read_text())["data"]
    vocab = {f"vocab/{p.name}" for p in (tiny_data / "vocab").iterdir()}
    assert data["dir"] == str(tiny_data.resolve())
    assert data["files"] == {n: sha256_file(tiny_data / n) for n in {"items.parquet", *vocab}}
    assert data == data_fingerprint(tiny_data)


def _edit_manifest(run: Path, old: bytes, new: bytes) -> None:
    text = (run / "manifest.json").read_bytes()
    assert text.count(old) == 1, old
    (run / "manifest.json").write_bytes(text.replace(old, new))


def test_flipped_manifest_field_is_refused(copy: Path):
    """One bit turns 30 steps into 31 (or 1500 items into 1501): the manifest's checksum."""
    _edit_manifest(copy, b'"steps": 30,', b'"steps": 31,')
    with pytest.raises(RunIntegrityError, match=r"manifest\.json: checksum mismatch"):
        load_run(copy)


def test_manifest_with_another_layout_is_refused(copy: Path):
    """The same fields laid out otherwise (a tab for a space): every byte is checked."""
    _edit_manifest(copy, b'"steps": 30,', b'"steps":\t30,')
    with pytest.raises(RunIntegrityError, match=r"manifest\.json: bytes differ"):
        load_run(copy)


def test_manifest_of_an_older_format_is_refused(copy: Path):
    _edit_manifest(copy, b'"format_version": 2,', b'"format_version": 1,')
    with pytest.raises(
        RunIntegrityError, match=r"format_version 1, expected 2 \(written by another version"
    ):
        load_run(copy)


def test_retraining_removes_the_stale_item_index(copy: Path, tiny_data: Path):
    """Serving built an index for the old weights; training again must not leave it behind."""
    from multiembed.serve import build_bundle

    old = build_bundle(copy, tiny_data, "Flat")
    assert (copy / "index" / "Flat" / "items" / "manifest.json").is_file()
    result = train(tiny_config(max_steps=5), tiny_data, copy, progress=False, resume=False)
    assert result.model_version != old.model_version
    assert not (copy / "index").exists()
    new = build_bundle(copy, tiny_data, "Flat")  # rebuilt for the new weights
    assert new.model_version == result.model_version


def test_unfinished_run_is_refused(tmp_path: Path):
    (tmp_path / "run").mkdir()
    with pytest.raises(RunIntegrityError, match=r"manifest\.json: missing \(the run has not"):
        load_run(tmp_path / "run")


def test_global_interest_setting_reaches_the_model(tiny_data: Path):
    features = load_item_features(tiny_data)
    on = tiny_config({"global_interest": True})
    assert model_from_config(CONFIG, features, n_topics=n_topic_ids(tiny_data)).k == 3
    assert model_from_config(on, features, n_topics=n_topic_ids(tiny_data)).k == 4


@pytest.mark.parametrize(
    ("key", "attribute", "values"),
    [
        ("dcm_scale", "scale", ("mass", "items")),
        ("dcm_pool", "pool", ("mean", "attention")),
        ("dcm_affinity", "affinity", ("dot", "cosine")),
    ],
)
def test_dcm_setting_reaches_the_extractor(
    tiny_data: Path, key: str, attribute: str, values: tuple[str, str]
):
    features = load_item_features(tiny_data)
    n_topics = n_topic_ids(tiny_data)
    default_value = getattr(CONFIG.model, key)
    other = values[0] if default_value == values[1] else values[1]
    default = model_from_config(CONFIG, features, n_topics=n_topics).user_tower.conditions
    assert getattr(default.extractor, attribute) == default_value
    changed = model_from_config(tiny_config({key: other}), features, n_topics=n_topics)
    assert getattr(changed.user_tower.conditions.extractor, attribute) == other


def test_summary_global_only_setting_reaches_the_tower(tiny_data: Path):
    features = load_item_features(tiny_data)
    n_topics = n_topic_ids(tiny_data)
    on = tiny_config({"global_interest": True, "summary_global_only": True})
    off = tiny_config({"global_interest": True, "summary_global_only": False})
    assert not model_from_config(off, features, n_topics=n_topics).user_tower.summary.global_only
    assert model_from_config(on, features, n_topics=n_topics).user_tower.summary.global_only
    alone = tiny_config({"global_interest": False, "summary_global_only": True})
    assert not model_from_config(alone, features, n_topics=n_topics).user_tower.summary.global_only


def test_dcm_init_setting_reaches_the_extractor(tiny_data: Path):
    features = load_item_features(tiny_data)
    n_topics = n_topic_ids(tiny_data)
    gaussian = tiny_config({"dcm_init": "gaussian"})
    default = model_from_config(CONFIG, features, n_topics=n_topics).user_tower.conditions.extractor
    assert default.init == "farthest_point"
    gaussian_tower = model_from_config(gaussian, features, n_topics=n_topics).user_tower
    assert gaussian_tower.conditions.extractor.init == "gaussian"
