"""Config bounds: finite numbers, sizes with a ceiling, non-empty lists, cross-field rules.

Every problem of a document is reported in one `ConfigError`, one line per key.
"""

import dataclasses
import tomllib
import typing

import pytest

from multiembed.config import (
    Config,
    DataConfig,
    EvalConfig,
    ExamplesConfig,
    ModelConfig,
    SplitConfig,
    SyntheticConfig,
    TrainConfig,
    parse,
)
from multiembed.errors import ConfigError

SECTIONS = (
    DataConfig,
    SyntheticConfig,
    SplitConfig,
    ExamplesConfig,
    ModelConfig,
    TrainConfig,
    EvalConfig,
)


def _fields_of_type(tp: type) -> list[tuple[type, str]]:
    return [
        (cls, f.name)
        for cls in SECTIONS
        for f in dataclasses.fields(cls)
        if typing.get_type_hints(cls)[f.name] is tp
    ]


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(Config, tomllib.loads(text))
    return info.value.problems


@pytest.mark.parametrize(("cls", "name"), _fields_of_type(float))
@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_every_float_setting_must_be_finite(cls: type, name: str, value: str) -> None:
    section = cls._section  # type: ignore[attr-defined]
    assert _problems(f"[{section}]\n{name} = {value}\n") == [
        f"{section}.{name} = {value}: must be a finite number"
    ]
    with pytest.raises(ConfigError, match=rf"{section}\.{name} = .*: must be a finite number"):
        cls(**{name: float(value)})


@pytest.mark.parametrize(("cls", "name"), _fields_of_type(int))
def test_every_int_setting_fits_in_64_bits(cls: type, name: str) -> None:
    section = cls._section  # type: ignore[attr-defined]
    problems = _problems(f"[{section}]\n{name} = {2**70}\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"{section}.{name} = {2**70}: must ")


def test_an_integer_beyond_every_float_for_a_float_setting() -> None:
    assert _problems(f"[train]\nlr = {10**400}\n") == [
        f"train.lr = {10**400}: must be a finite number"
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"[synthetic]\nn_users = {2**70}",
            f"synthetic.n_users = {2**70}: must be <= 100_000_000",
        ),
        ("[examples]\nseq_len = 1000000", "examples.seq_len = 1000000: must be <= 4_096"),
        (
            f"[train]\nbatch_size = {2**62}",
            f"train.batch_size = {2**62}: must be <= 65_536",
        ),
        ("[eval]\nbudget = 1000000000", "eval.budget = 1000000000: must be <= 100_000"),
        ("[model]\ndim = 100000", "model.dim = 100000: must be <= 4_096"),
        (
            "[train]\nfreq_buckets = 1099511627776",
            "train.freq_buckets = 1099511627776: must be <= 268_435_456",
        ),
        ("[split]\ntrain_days = 1e9", "split.train_days = 1000000000.0: must be <= 36_500"),
        ("[eval]\nks = []", "eval.ks = []: must not be empty"),
        ("[eval]\nseeds = [0, -1]", "eval.seeds = [0, -1]: every element must be >= 0"),
    ],
)
def test_sizes_have_a_ceiling_and_lists_content(text: str, problem: str) -> None:
    assert _problems(text) == [problem]


def test_held_out_shares_leave_users_to_train_on() -> None:
    rule = (
        "split.test_share = 0.5: must be < 1 - split.valid_share (0.5): "
        "no user would be left to train on"
    )
    assert _problems("[split]\nvalid_share = 0.5\ntest_share = 0.5\n") == [rule]
    with pytest.raises(ConfigError) as info:
        SplitConfig(valid_share=0.5, test_share=0.5)
    assert info.value.problems == [rule]


def test_synthetic_sub_topics_fit_the_items_and_a_block() -> None:
    assert _problems("[synthetic]\nn_items = 10\ninterests_max = 200\n") == [
        "synthetic.n_items = 10: must be >= n_topics * subtopics_per_topic (96) so that "
        "every sub-topic has an item",
        "synthetic.interests_max = 200: must be <= the number of sub-topics (96)",
    ]
    text = "[synthetic]\nn_topics = 5000\nsubtopics_per_topic = 1000\nn_items = 10000000\n"
    assert _problems(text) == [
        "synthetic.n_topics = 5000: n_topics * subtopics_per_topic (5000000) must be <= 10_000",
    ]


def test_a_cross_field_problem_names_the_key_the_document_set() -> None:
    """Only subtopics_per_topic was set: named once, though two rules on it fail."""
    assert _problems("[synthetic]\nsubtopics_per_topic = 834\n") == [
        "synthetic.subtopics_per_topic = 834: synthetic.n_topics = 24: "
        "n_topics * subtopics_per_topic (20016) must be <= 10_000",
    ]


def test_every_problem_of_a_hostile_document_in_one_message() -> None:
    text = f"""
[data]
ts_fence = inf
[synthetic]
n_users = {2**70}
[split]
valid_share = 0.5
test_share = 0.5
train_days = -1
[examples]
seq_len = 1000000
[model]
temperature = inf
[train]
lr = inf
grad_clip = inf
batch_size = {2**62}
[eval]
ks = []
"""
    with pytest.raises(ConfigError) as info:
        parse(Config, tomllib.loads(text), source="hostile.toml")
    assert info.value.problems == [
        "data.ts_fence = inf: must be a finite number",
        f"synthetic.n_users = {2**70}: must be <= 100_000_000",
        "split.train_days = -1.0: must be > 0",
        "split.test_share = 0.5: must be < 1 - split.valid_share (0.5): "
        "no user would be left to train on",
        "examples.seq_len = 1000000: must be <= 4_096",
        "model.temperature = inf: must be a finite number",
        f"train.batch_size = {2**62}: must be <= 65_536",
        "train.lr = inf: must be a finite number",
        "train.grad_clip = inf: must be a finite number",
        "eval.ks = []: must not be empty",
    ]
    assert str(info.value).startswith("invalid configuration in hostile.toml (10 problem(s)):")


def test_a_cross_rule_waits_for_its_fields_to_be_valid() -> None:
    # valid_share out of range: the sum rule is not judged on a value already refused
    assert _problems("[split]\nvalid_share = 0.9\ntest_share = 0.5\n") == [
        "split.valid_share = 0.9: must be between 0.0 and 0.5"
    ]


def test_defaults_and_the_paper_sizes_are_within_bounds() -> None:
    assert Config().train.batch_size == 512
    paper = parse(Config, {"model": {"k": 7, "dim": 256, "hidden_dim": 1024}})
    assert (paper.model.k, paper.model.dim) == (7, 256)
