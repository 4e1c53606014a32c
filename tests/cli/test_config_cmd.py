"""`multiembed presets`, `multiembed config show`, and `--preset` / `--config NAME` on commands."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

import multiembed.experiments
import multiembed.experiments.benchmark
import multiembed.train
from multiembed.cli.main import app
from multiembed.config import (
    Config,
    load_config,
    parse,
    preset_description,
    preset_names,
    reference_markdown,
)

KNOWN = ", ".join(preset_names())


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})


def _words(text: str) -> str:
    return " ".join(text.replace("│", " ").split())  # table cells pad and wrap: compare words


def _refused(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def test_presets_lists_each_preset_with_its_description():
    result = invoke("presets")
    assert result.exit_code == 0, result.output
    for name in preset_names():
        assert f" {name} {preset_description(name)} " in f" {_words(result.output)} "


def test_config_show_lists_every_key_with_value_default_rule_and_doc():
    result = invoke("config", "show", "--preset", "paper")
    assert result.exit_code == 0, result.output
    text = _words(result.output)
    assert "model.k* 7 4 > 0; <= 1_024 K_im: implicit interests (paper: 7)" in text
    assert 'split.protocol* "time" "users" one of users, comirec, time' in text
    for key in (
        f"{section}.{name}"
        for section, table in tomllib.loads(
            invoke("config", "show", "--format", "toml").output
        ).items()
        for name in table
    ):
        assert f" {key} " in f" {text} " or f" {key}* " in f" {text} ", key


def test_config_show_toml_reads_back_as_the_effective_config(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nk = 3\n")
    result = invoke("config", "show", "--preset", "mind", "--config", str(path), "--format", "toml")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# multiembed configuration: --preset mind --config ")
    shown = parse(Config, tomllib.loads(result.output))
    assert shown == load_config(path, preset="mind")
    assert (shown.model.name, shown.model.k, shown.model.dhen_preset) == ("mind", 3, "paper")


def test_config_show_markdown_is_the_reference_page():
    result = invoke("config", "show", "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert result.output == reference_markdown()


def test_config_show_markdown_takes_no_preset():
    _refused(
        invoke("config", "show", "--format", "markdown", "--preset", "paper"), "--format markdown"
    )


def test_config_show_of_an_unknown_preset_lists_the_known_ones():
    _refused(invoke("config", "show", "--preset", "papr"), f"unknown preset (known: {KNOWN})")


def test_config_show_of_a_bad_file_names_the_key(tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nk = 0\n")
    _refused(
        invoke("config", "show", "--config", str(path), "--preset", "paper"),
        "model.k = 0: must be > 0",
    )


class _Stop(Exception):
    """Raised by a stand-in for the library call, carrying the config it was given."""


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def stand_in(config: Config, *args: Any, **kwargs: Any) -> None:
        seen["config"] = kwargs.get("config", config)
        raise _Stop

    def benchmark_stand_in(*args: Any, config: Config, **kwargs: Any) -> None:
        stand_in(config)

    monkeypatch.setattr(multiembed.train, "train", stand_in)
    monkeypatch.setattr(multiembed.experiments.benchmark, "benchmark", benchmark_stand_in)
    experiment = SimpleNamespace(run=benchmark_stand_in)
    monkeypatch.setattr(multiembed.experiments, "get", lambda name: experiment)
    return seen


@pytest.mark.parametrize(
    "options",
    [["--preset", "paper"], ["--config", "paper"]],
    ids=["--preset", "--config NAME"],
)
@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "d", "--out", "o"],
        ["benchmark", "d"],
        ["experiment", "table1", "--data", "d", "--out", "o"],
    ],
    ids=lambda c: c[0],
)
def test_commands_take_a_preset(command, options, captured, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(*command, *options)
    assert isinstance(result.exception, _Stop), result.output
    assert captured["config"] == load_config(preset="paper")


def test_train_file_over_preset(captured, tmp_path: Path):
    path = tmp_path / "run.toml"
    path.write_text("[model]\nk = 3\n")
    args = ["train", "--data", "d", "--out", "o", "--preset", "mind", "--config", str(path)]
    result = invoke(*args)
    assert isinstance(result.exception, _Stop), result.output
    assert captured["config"] == load_config(path, preset="mind")


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--data", "d", "--out", "o"],
        ["benchmark", "d"],
        ["experiment", "table1", "--data", "d", "--out", "o"],
        ["evaluate", "run", "--data", "d"],
        ["prepare", "--dataset", "synthetic", "--out", "o"],
        ["demo", "--out", "o"],
    ],
)
def test_an_unknown_preset_stops_every_command_with_the_known_ones(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(invoke(*command, "--preset", "papr"), f"unknown preset (known: {KNOWN})")
    assert not Path("o").exists()


def test_demo_takes_a_preset_under_its_file():
    from multiembed.experiments.demo import DEMO_SETTINGS, demo_config

    cfg = demo_config(preset="paper")
    assert (cfg.model.k, cfg.model.dhen_preset) == (7, "paper")
    assert cfg.train.epochs == DEMO_SETTINGS["train"]["epochs"]
    assert demo_config("paper") == cfg


def test_config_show_piped_keeps_each_setting_on_one_line():
    # piped without COLUMNS, rich would wrap the table at 80 columns and split every
    # description over several lines; each row stays whole, so `| grep KEY` shows it
    result = CliRunner().invoke(app, ["config", "show"], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if " model.dcm_affinity " in line]
    assert len(rows) == 1, result.output
    assert "so a heavy cluster does not take every item" in rows[0]
