"""Configuration: frozen keyword-only dataclasses read from TOML.

`load_config(path, preset=...)` is what a command runs with: the defaults, then a
shipped preset (`preset_names()`; ``paper`` is the paper's configuration), then
the file. `settings(cfg)` describes every setting from its own metadata (value,
default, rule, doc), `to_toml` writes a complete file and `reference_markdown`
the reference page ``docs/config.md``.

>>> cfg = parse(Config, {"split": {"train_days": 7}})
>>> cfg.split.train_days
7.0
>>> parse(Config, {"split": {"train_days": -1, "colour": "red"}})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
multiembed.errors.ConfigError: invalid configuration (2 problem(s)):
  split.colour = "red": unknown key (known: allow_small_train, ...)
  split.train_days = -1.0: must be > 0
"""

from __future__ import annotations

from multiembed.config._check import setting
from multiembed.config._core import Section, load_toml, parse, read_toml, to_dict
from multiembed.config._presets import (
    ConfigDocument,
    config_document,
    load_config,
    merge_documents,
    preset_description,
    preset_names,
    preset_text,
)
from multiembed.config._reference import (
    SettingInfo,
    markdown_cell,
    reference_markdown,
    settings,
    to_toml,
    toml_value,
)
from multiembed.config.sections import (
    Config,
    DataConfig,
    EvalConfig,
    ExamplesConfig,
    ModelConfig,
    SplitConfig,
    SyntheticConfig,
    TrainConfig,
)

__all__ = [
    "Config",
    "ConfigDocument",
    "DataConfig",
    "EvalConfig",
    "ExamplesConfig",
    "ModelConfig",
    "Section",
    "SettingInfo",
    "SplitConfig",
    "SyntheticConfig",
    "TrainConfig",
    "config_document",
    "load_config",
    "load_toml",
    "markdown_cell",
    "merge_documents",
    "parse",
    "preset_description",
    "preset_names",
    "preset_text",
    "read_toml",
    "reference_markdown",
    "setting",
    "settings",
    "to_dict",
    "to_toml",
    "toml_value",
]
