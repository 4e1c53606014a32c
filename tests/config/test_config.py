"""Config: every problem reported at once as `section.key = value: rule`."""

from pathlib import Path

import pytest

from multiembed.config import (
    Config,
    ModelConfig,
    SplitConfig,
    SyntheticConfig,
    load_toml,
    parse,
    to_dict,
)
from multiembed.errors import ConfigError


def test_defaults_round_trip_through_dict():
    cfg = Config()
    assert parse(Config, to_dict(cfg)) == cfg


def test_all_problems_in_one_error_with_pinned_messages():
    data = {
        "split": {"train_days": -2, "protocol": "random", "seed": "x"},
        "synthetic": {"n_users": 0, "legacy_share": 1.5, "colour": 3},
        "mystery": {},
    }
    with pytest.raises(ConfigError) as info:
        parse(Config, data)
    assert info.value.problems == [
        "mystery = {...}: unknown section "
        "(known: data, eval, examples, model, split, synthetic, train)",
        "synthetic.colour = 3: unknown key (known: days, engagements_per_day, interests_max, "
        "interests_min, invalid_item_share, legacy_share, long_term_share, low_activity_share, "
        "n_items, n_topics, n_users, negative_action_share, new_user_share, seed, start_ts, "
        "subtopics_per_topic, vector_dim, vector_noise)",
        "synthetic.n_users = 0: must be > 0",
        "synthetic.legacy_share = 1.5: must be between 0.0 and 1.0",
        'split.protocol = "random": must be one of users, comirec, time',
        "split.train_days = -2.0: must be > 0",
        'split.seed = "x": must be an integer',
    ]


def test_wrong_types_are_named():
    with pytest.raises(ConfigError) as info:
        parse(Config, {"data": {"batch_rows": 1.5, "ts_fence": True}})
    assert info.value.problems == [
        "data.ts_fence = true: must be a number",
        "data.batch_rows = 1.5: must be an integer",
    ]


def test_construction_in_code_runs_the_same_rules():
    with pytest.raises(ConfigError, match=r"split.valid_share = 0.9: must be between 0.0 and 0.5"):
        SplitConfig(valid_share=0.9)


def test_construction_in_code_checks_choices_and_booleans():
    """What parse refuses by type, a section built in code refuses too, once."""
    with pytest.raises(ConfigError) as info:
        ModelConfig(name="capsnet", followed_topics=1, k=2)  # type: ignore[arg-type]
    assert info.value.problems == [
        'model.name = "capsnet": must be one of single, mind, dcm, self_attention, '
        "interest_token, pfs",
        "model.followed_topics = 1: must be a boolean",
    ]
    with pytest.raises(ConfigError) as info:
        parse(Config, {"model": {"name": "capsnet"}})
    assert info.value.problems == [
        'model.name = "capsnet": must be one of single, mind, dcm, self_attention, '
        "interest_token, pfs"
    ]


def test_cross_field_rule():
    with pytest.raises(ConfigError, match=r"interests_min = 5: must be <= synthetic\.interests_m"):
        SyntheticConfig(interests_min=5, interests_max=3)


def test_frozen_and_keyword_only():
    cfg = SplitConfig()
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        SplitConfig("time")  # type: ignore[misc]


def test_toml_file(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('[split]\nprotocol = "comirec"\n[synthetic]\nn_users = 50\n')
    cfg = load_toml(Config, path)
    assert cfg.split.protocol == "comirec"
    assert cfg.synthetic.n_users == 50


def test_malformed_and_missing_toml(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[split\n")
    with pytest.raises(ConfigError, match=r"(?s)bad.toml.*not valid TOML"):
        load_toml(Config, bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_toml(Config, tmp_path / "absent.toml")
