"""The root configuration: one field per TOML table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

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
