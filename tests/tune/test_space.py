"""The search space file: what it accepts, and a message naming key and rule for the rest."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from multiembed.config import Config, parse
from multiembed.errors import ConfigError
from multiembed.tune import Choices, Range, configured, load_space, parse_space


def _search(space: Any, **search: Any) -> dict[str, Any]:
    return {"search": {"trials": 3, "metric": "hr@100", **search, "space": space}}


def _problems(document: dict[str, Any], base: Config | None = None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_space(document, base or Config())
    return err.value.problems


def test_ranges_and_choices_take_the_settings_types() -> None:
    space = parse_space(
        _search(
            {
                "model.temperature": {"low": 0.05, "high": 0.5, "log": True},
                "model.k": {"choices": [2, 4, 7]},
                "train.lr": {"low": 1e-4, "high": 1e-2, "log": True},
                "train.batch_size": {"low": 64, "high": 512, "step": 64},
                "train.weight_decay": {"low": 0, "high": 1},
                "model.name": {"choices": ["dcm", "mind"]},
            },
            seed=7,
            timeout=60,
            prune=False,
            startup_trials=0,
            warmup=3,
        ),
        Config(),
    )
    assert space.dimensions == (
        Range("model.temperature", 0.05, 0.5, integer=False, log=True),
        Choices("model.k", (2, 4, 7)),
        Range("train.lr", 1e-4, 1e-2, integer=False, log=True),
        Range("train.batch_size", 64, 512, integer=True, step=64),
        Range("train.weight_decay", 0.0, 1.0, integer=False),
        Choices("model.name", ("dcm", "mind")),
    )
    assert isinstance(space.dimensions[4].low, float)  # type: ignore[union-attr]
    assert (space.seed, space.timeout, space.prune, space.startup_trials, space.warmup) == (
        7,
        60.0,
        False,
        0,
        3,
    )


def test_nested_tables_read_as_dotted_keys() -> None:
    nested = _search(
        {"model": {"k": {"choices": [2, 3]}}, "train": {"lr": {"low": 0.001, "high": 0.01}}}
    )
    assert parse_space(nested, Config()).keys == ("model.k", "train.lr")


def test_a_trial_config_is_the_base_with_the_values_checked() -> None:
    cfg = configured(Config(), {"model.k": 2, "train.lr": 0.01, "examples.seq_len": 20})
    assert (cfg.model.k, cfg.train.lr, cfg.examples.seq_len) == (2, 0.01, 20)
    assert cfg.model.dim == Config().model.dim
    with pytest.raises(ConfigError, match=r"model\.k = 0: must be > 0"):
        configured(Config(), {"model.k": 0})


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        (
            {"model.temprature": {"low": 0.1, "high": 0.5}},
            'search.space."model.temprature": unknown setting (did you mean model.temperature?)',
        ),
        (
            {"split.seed": {"choices": [0, 1]}},
            'search.space."split.seed": split settings cannot be tuned (they choose the '
            "validation users the trials are compared on); tunable: model.*, train.*, examples.*",
        ),
        (
            {"eval.corpus_size": {"choices": [10, 20]}},
            'search.space."eval.corpus_size": eval settings cannot be tuned',
        ),
        (
            {"train.validation": {"choices": [True, False]}},
            'search.space."train.validation": cannot be tuned (the trials are compared by '
            "validation, so it stays true)",
        ),
        (
            {"model.temperature": {"low": 0.5, "high": 0.05}},
            'search.space."model.temperature": low (0.5) must be < high (0.05)',
        ),
        (
            {"train.lr": {"low": 0.0, "high": 0.01, "log": True}},
            'search.space."train.lr": log = true needs low > 0 (got 0.0)',
        ),
        (
            {"model.temperature": {"low": 0, "high": 0.5}},
            'search.space."model.temperature": low 0 is refused: model.temperature = 0.0: '
            "must be > 0",
        ),
        (
            {"model.k": {"choices": [2, 0]}},
            'search.space."model.k": choice 0 is refused: model.k = 0: must be > 0',
        ),
        (
            {"model.name": {"choices": ["dcm", "capsnet"]}},
            'search.space."model.name": choice "capsnet" is refused: model.name = "capsnet": '
            "must be one of single, mind, dcm, self_attention, interest_token, pfs",
        ),
        (
            {"model.k": {"low": 2.5, "high": 7}},
            'search.space."model.k".low = 2.5: model.k takes integers',
        ),
        (
            {"model.name": {"low": 1, "high": 2}},
            'search.space."model.name": a range needs a number setting; model.name is a string '
            "(one of single, mind, dcm, self_attention, interest_token, pfs): list its values "
            "as choices = [...]",
        ),
        (
            {"train.lr": {"low": 0.001}},
            'search.space."train.lr": missing high (or give choices = [...])',
        ),
        (
            {"train.lr": {"low": 0.001, "high": 0.01, "scale": "log"}},
            'search.space."train.lr": unknown key scale (known: low, high, log, step, choices)',
        ),
        (
            {"train.lr": {"low": 0.001, "high": 0.01, "step": 0.001, "log": True}},
            'search.space."train.lr": step and log = true cannot go together',
        ),
        (
            {"model.k": {"choices": [2, 2]}},
            'search.space."model.k".choices = [2, 2]: a choice is listed twice',
        ),
        (
            {"model.k": {"choices": []}},
            'search.space."model.k".choices = []: must be a non-empty list',
        ),
        (
            {"model.k": 4},
            'search.space."model.k" = 4: must be a table { low = ..., high = ... } or '
            "{ choices = [...] }",
        ),
    ],
)
def test_a_bad_space_names_the_key_and_the_rule(space: dict[str, Any], expected: str) -> None:
    problems = _problems(_search(space))
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems[0]


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({"trials": 0}, "search.trials = 0: must be an integer from 1 to 100_000"),
        ({"metric": "recall@50"}, 'search.metric = "recall@50": not a metric validation measures'),
        (
            {"metric": "hr@20"},
            'search.metric = "hr@20": validation measures hr@50, hr@100, hr@1000; to tune '
            "another cut-off add it to eval.ks in the base configuration",
        ),
        ({"metric": "explicit_hr@100"}, 'search.metric = "explicit_hr@100": not a metric'),
        ({"timeout": -1}, "search.timeout = -1: must be a number of seconds > 0"),
        ({"prune": "yes"}, 'search.prune = "yes": must be true or false'),
        ({"trails": 3}, "search.trails: unknown key (known: trials, metric, seed,"),
    ],
)
def test_bad_search_settings_name_the_key(search: dict[str, Any], expected: str) -> None:
    problems = _problems(_search({"model.k": {"choices": [2, 4]}}, **search))
    assert len(problems) == 1
    assert problems[0].startswith(expected), problems[0]


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        _search({"model.k": {"choices": [0]}, "train.lr": {"low": 1, "high": 0}}, trials=-1)
    )
    assert len(problems) == 3


def test_the_metric_follows_the_base_config() -> None:
    explicit = parse(Config, {"model": {"kind": "explicit"}})
    space = parse_space(_search({"model.k": {"choices": [2]}}, metric="explicit_hr@50"), explicit)
    assert space.metric == "explicit_hr@50"
    assert _problems(_search({"model.k": {"choices": [2]}}), explicit)[0].startswith(
        'search.metric = "hr@100": not a metric validation measures for a model.kind = '
        '"explicit" model (measured: explicit_hr@50, explicit_hr@100, explicit_hr@1000)'
    )
    quiet = parse(Config, {"train": {"validation": False}})
    assert _problems(_search({"model.k": {"choices": [2]}}), quiet) == [
        'search.metric = "hr@100": the base configuration sets train.validation = false; the '
        "search reads the validation metric, so set it to true"
    ]


def test_a_missing_search_table_or_space_says_what_is_expected() -> None:
    assert _problems({"space": {}}) == [
        "space: unknown table (a space file holds [search] only)",
        "search: missing table [search] (with trials, metric and [search.space])",
    ]
    assert _problems({"search": {"trials": 2, "metric": "hr@100"}}) == [
        'search.space: missing or empty table (e.g. "train.lr" = { low = 1e-4, high = 1e-2 })'
    ]


def test_the_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"(?s)in .*nope\.toml .*file not found"):
        load_space(tmp_path / "nope.toml", Config())
    bad = tmp_path / "bad.toml"
    bad.write_text("[search\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"(?s)bad\.toml .*not valid TOML"):
        load_space(bad, Config())
    ok = tmp_path / "space.toml"
    ok.write_text(
        '[search]\ntrials = 2\nmetric = "hr@100"\n[search.space]\n'
        '"train.lr" = { low = 1e-4, high = 1e-2, log = true }\n',
        encoding="utf-8",
    )
    space = load_space(ok, Config())
    assert space.source == str(ok)
    assert math.isclose(space.dimensions[0].low, 1e-4)  # type: ignore[union-attr]


def test_the_readme_example_space_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Tuning", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    space = parse_space(tomllib.loads(block), Config())
    assert space.keys == ("model.temperature", "model.k", "train.lr", "train.batch_size")
    assert (space.trials, space.metric, space.prune) == (20, "hr@100", True)
