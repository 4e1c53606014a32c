"""Configuration: frozen keyword-only dataclasses read from TOML.

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

from dataclasses import dataclass, field
from typing import ClassVar

from multiembed.config._check import setting
from multiembed.config._core import Section, load_toml, parse, to_dict
from multiembed.config.sections import (
    DataConfig,
    EvalConfig,
    ExamplesConfig,
    ModelConfig,
    SplitConfig,
    SyntheticConfig,
    TrainConfig,
)


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration; each field is one TOML table."""

    _root: ClassVar[bool] = True

    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    examples: ExamplesConfig = field(default_factory=ExamplesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


__all__ = [
    "Config",
    "DataConfig",
    "EvalConfig",
    "ExamplesConfig",
    "ModelConfig",
    "Section",
    "SplitConfig",
    "SyntheticConfig",
    "TrainConfig",
    "load_toml",
    "parse",
    "setting",
    "to_dict",
]
