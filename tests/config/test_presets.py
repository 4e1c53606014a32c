"""Shipped presets: the paper's numbers, one preset per baseline, layering and its errors."""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import pytest

from multiembed.config import (
    Config,
    _presets,
    config_document,
    load_config,
    load_toml,
    preset_description,
    preset_names,
    to_dict,
)
from multiembed.errors import ConfigError
from multiembed.nn.dhen_sizes import PRESETS as DHEN_SIZES

KNOWN = "cr, cr_item, dcm, interest_token, mind, paper, pfs, self_attention, single"

# What each baseline changes on the paper preset, and nothing else.
BASELINES = {
    "dcm": {"name": "dcm"},
    "single": {"name": "single"},
    "mind": {"name": "mind"},
    "self_attention": {"name": "self_attention", "association": "gumbel"},
    "interest_token": {"name": "interest_token", "association": "gumbel"},
    "pfs": {"name": "pfs", "pfs_topics": 32},
    "cr": {"kind": "explicit", "condition": "source"},
    "cr_item": {"kind": "explicit", "condition": "item", "condition_examples": "all"},
}


def test_the_shipped_presets():
    assert preset_names() == tuple(KNOWN.split(", "))


def test_paper_preset_is_the_papers_configuration():
    cfg = load_config(preset="paper")
    m = cfg.model
    assert (m.kind, m.name) == ("implicit", "dcm")  # Section 3.2.2
    assert m.k == 7  # Section 4.1.2: K_im
    assert cfg.eval.k_ex == 5  # Section 4.1.2: K_ex
    assert m.dhen_preset == "paper"  # Appendix A
    assert m.scoring == "associated"  # Eq. 9 as written
    assert m.dcm_min_share == 0.0  # a fixed number of clusters, Section 4.4
    assert m.dcm_pool == "mean"  # Eq. 2
    assert m.dcm_scale == "mass"  # Eq. 3: squashed at the cluster's mass
    assert m.dcm_affinity == "dot"  # Eq. 7: c_k^T e_i
    assert (m.validity_aware, m.dcm_routing) == (True, "single_assignment")  # Eq. 6, 7
    assert m.association == "auto"  # argmax (Eq. 8), Gumbel for attention and tokens
    assert m.share_items is False  # Figure 3: separate towers
    assert m.user_summary == "mean"
    assert m.global_interest is False
    assert m.pfs_topics == 32  # Appendix B
    assert m.temperature == 0.05
    split = cfg.split
    assert (split.protocol, split.train_days, split.eval_days) == ("time", 14.0, 1.0)
    assert cfg.eval.corpus_size == 1_000_000  # Section 4.1.1
    assert cfg.eval.budget == 1000  # O(1k)
    assert (cfg.eval.core_min_positives, cfg.eval.core_window_days) == (5, 28.0)  # > 4 in 28 d


def test_the_paper_dhen_sizes_are_appendix_a():
    sizes = DHEN_SIZES[load_config(preset="paper").model.dhen_preset]
    assert (sizes.field_dim, sizes.n_heads, sizes.mlp_hidden_dim) == (256, 4, 1024)
    assert (sizes.masknet_blocks, sizes.masknet_hidden_dim) == (4, 128)
    assert sizes.masknet_projection_ratio == 0.5


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_each_baseline_is_the_paper_preset_but_its_model_keys(name: str):
    paper, baseline = to_dict(load_config(preset="paper")), to_dict(load_config(preset=name))
    changed = {k: v for k, v in baseline["model"].items() if paper["model"][k] != v}
    assert changed == {k: v for k, v in BASELINES[name].items() if paper["model"][k] != v}
    assert {**paper, "model": None} == {**baseline, "model": None}
    assert config_document(preset=name).data["model"].items() >= BASELINES[name].items()


@pytest.mark.parametrize("name", KNOWN.split(", "))
def test_every_preset_loads_by_name_by_config_and_from_its_file(name: str, tmp_path: Path):
    by_preset = load_config(preset=name)
    assert load_config(name) == by_preset  # --config NAME when no such file exists
    shipped = resources.files("multiembed") / "presets" / f"{name}.toml"
    copy = tmp_path / f"{name}.toml"
    copy.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_config(copy) == by_preset  # a copy with its `base` line
    assert preset_description(name)  # the first comment line


def test_every_preset_but_paper_builds_on_paper():
    for name in preset_names():
        base = config_document(name).data  # resolved: no `base` key left
        assert "base" not in base
        text = (resources.files("multiembed") / "presets" / f"{name}.toml").read_text()
        assert ('base = "paper"' in text) == (name != "paper"), name


def test_an_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        load_config(preset="papr")
    assert info.value.problems == [f'preset = "papr": unknown preset (known: {KNOWN})']


def test_a_missing_config_file_named_like_a_preset_lists_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("papr")
    assert info.value.problems == [f"file not found (nor a preset: known {KNOWN})"]
    with pytest.raises(ConfigError) as info:
        load_config("run.toml")
    assert info.value.problems == ["file not found"]


def test_a_file_named_like_a_preset_is_read_as_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("paper").write_text("[model]\nk = 3\n")
    assert load_config("paper").model.k == 3


def test_the_file_wins_over_the_preset_key_by_key(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nk = 3\n[train]\nepochs = 2\n")
    cfg = load_config(path, preset="paper")
    assert (cfg.model.k, cfg.train.epochs) == (3, 2)  # the file's
    assert (cfg.model.dhen_preset, cfg.split.protocol) == ("paper", "time")  # the preset's
    assert load_config(path).model.dhen_preset == "small"  # no preset: the defaults


def test_a_file_may_name_its_base(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text('base = "mind"\n[model]\nk = 3\n')
    assert load_config(path) == load_config(path, preset="mind")
    assert load_config(path).model == dataclasses.replace(load_config(preset="mind").model, k=3)


def test_a_file_building_on_another_preset_than_preset_is_refused(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text('base = "mind"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, preset="paper")
    assert info.value.problems == ['base = "mind": builds on another preset than "paper"; name one']
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('base = "papr"', f'base = "papr": unknown preset (known: {KNOWN})'),
        ("base = 3", f"base = 3: unknown preset (known: {KNOWN})"),
    ],
)
def test_a_bad_base_is_named(line: str, problem: str, tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text(line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [problem]
    assert str(path) in str(info.value)


def test_presets_building_on_each_other_in_a_cycle_are_refused(tmp_path, monkeypatch):
    (tmp_path / "a.toml").write_text('# a\nbase = "b"\n')
    (tmp_path / "b.toml").write_text('# b\nbase = "a"\n')
    monkeypatch.setattr(_presets, "_folder", lambda: tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(preset="a")
    assert info.value.problems == ['base = "a": presets build on each other (a -> b -> a)']


def test_a_bad_setting_in_a_layered_config_names_both_sources(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nk = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, preset="paper")
    assert info.value.problems == ["model.k = 0: must be > 0"]
    assert f'in {path} on preset "paper"' in str(info.value)


def test_no_preset_and_no_file_is_the_defaults():
    assert load_config() == Config()


def test_load_toml_still_reads_plain_files(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nk = 3\n")
    assert load_toml(Config, path) == load_config(path)
