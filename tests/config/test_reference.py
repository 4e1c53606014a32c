"""The configuration described from its own metadata: every key, TOML round trips, docs page."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from multiembed.config import (
    Config,
    load_config,
    load_toml,
    parse,
    preset_names,
    reference_markdown,
    settings,
    to_toml,
    toml_value,
)

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def _every_key() -> list[str]:
    return [
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(Config)
        for f in dataclasses.fields(getattr(Config(), section.name))
    ]


def test_settings_list_every_key_of_every_section_in_order():
    assert [s.key for s in settings()] == _every_key()


def test_every_setting_has_a_one_line_doc():
    undocumented = [s.key for s in settings() if not s.doc.strip()]
    assert undocumented == []


def test_value_and_default_come_from_the_config():
    info = {s.key: s for s in settings(load_config(preset="paper"))}
    assert (info["model.k"].value, info["model.k"].default) == (7, 4)
    assert (info["split.protocol"].value, info["split.protocol"].default) == ("time", "users")
    assert info["eval.ks"].value == (50, 100, 1000)


@pytest.mark.parametrize(
    ("key", "kind", "rule"),
    [
        ("model.k", "integer", "> 0; <= 1_024"),
        ("split.protocol", "string", "one of users, comirec, time"),
        ("split.test_share", "number", "between 0.0 and 0.5; < 1 - valid_share"),
        ("synthetic.interests_min", "integer", "> 0; <= interests_max"),
        ("eval.ks", "list of integers", "not empty; every element > 0"),
        ("train.validation", "boolean", ""),
        ("data.rating_threshold", "number", ""),
    ],
)
def test_rules_say_what_the_checks_check(key: str, kind: str, rule: str):
    info = {s.key: s for s in settings()}[key]
    assert (info.kind, info.rule) == (kind, rule)


@pytest.mark.parametrize("name", [None, *preset_names()])
def test_toml_of_a_config_reads_back_equal(name: str | None, tmp_path: Path):
    cfg = Config() if name is None else load_config(preset=name)
    path = tmp_path / "effective.toml"
    path.write_text(to_toml(cfg, comment="line one\nline two"), encoding="utf-8")
    assert load_toml(Config, path) == cfg
    assert set(tomllib.loads(path.read_text())) == {f.name for f in dataclasses.fields(Config)}


def test_toml_writes_extreme_numbers_back_exactly():
    cfg = parse(
        Config,
        {"train": {"lr": 1e-300, "weight_decay": 1.5e300, "seed": 2**63 - 1}},
    )
    assert parse(Config, tomllib.loads(to_toml(cfg))) == cfg


@hsettings(max_examples=300, deadline=None, derandomize=True)
@given(st.text())
def test_toml_strings_read_back_exactly(text: str):
    assert tomllib.loads(f"x = {toml_value(text)}")["x"] == text


def test_the_docs_page_is_up_to_date():
    assert DOCS_PAGE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/config.md is stale: run `multiembed config show --format markdown > docs/config.md`"
    )


def test_the_reference_lists_every_key_and_preset():
    page = reference_markdown()
    for key in _every_key():
        section, name = key.split(".")
        assert f"| `{name}` |" in page.split(f"### `[{section}]`")[1].split("###")[0], key
    for name in preset_names():
        assert f"| `{name}` |" in page
