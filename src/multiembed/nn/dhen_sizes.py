"""Named DHEN sizes: `SMALL` (trains in minutes on two CPU cores) and `PAPER` (Appendix A).

A preset holds sizes only; the caller adds ``n_fields`` and ``out_dim``, which
depend on its features, and passes the keyword arguments to `DHEN`:

    >>> from multiembed.nn.dhen import DHEN
    >>> dhen = DHEN(n_fields=4, out_dim=16, **SMALL.as_kwargs())
    >>> dhen.field_dim
    32
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TypedDict

from multiembed.nn.dhen import _size_problems


class DHENSizeKwargs(TypedDict):
    """The keyword arguments of `DHEN` that a preset fixes."""

    field_dim: int
    n_heads: int
    transformer_ff_dim: int
    mlp_hidden_dim: int
    masknet_blocks: int
    masknet_hidden_dim: int
    masknet_projection_ratio: float
    dropout: float


@dataclass(frozen=True, kw_only=True)
class DHENSizes:
    """Sizes of a `DHEN`, validated at construction (see `DHEN` for each field's meaning)."""

    field_dim: int
    n_heads: int
    transformer_ff_dim: int
    mlp_hidden_dim: int
    masknet_blocks: int
    masknet_hidden_dim: int
    masknet_projection_ratio: float
    dropout: float = 0.0

    def __post_init__(self) -> None:
        problems = _size_problems(**self.as_kwargs())
        if problems:
            raise ValueError("invalid DHENSizes: " + "; ".join(problems))

    def as_kwargs(self) -> DHENSizeKwargs:
        """The sizes as `DHEN` keyword arguments."""
        return DHENSizeKwargs(
            field_dim=self.field_dim,
            n_heads=self.n_heads,
            transformer_ff_dim=self.transformer_ff_dim,
            mlp_hidden_dim=self.mlp_hidden_dim,
            masknet_blocks=self.masknet_blocks,
            masknet_hidden_dim=self.masknet_hidden_dim,
            masknet_projection_ratio=self.masknet_projection_ratio,
            dropout=self.dropout,
        )


SMALL = DHENSizes(
    field_dim=32,
    n_heads=2,
    transformer_ff_dim=64,
    mlp_hidden_dim=128,
    masknet_blocks=2,
    masknet_hidden_dim=64,
    masknet_projection_ratio=0.5,
)
"""Default: about 0.15 M parameters at 4 fields, 0.3 M at 8; fast on CPU."""

PAPER = DHENSizes(
    field_dim=256,
    n_heads=4,
    transformer_ff_dim=1024,
    mlp_hidden_dim=1024,
    masknet_blocks=4,
    masknet_hidden_dim=128,
    masknet_projection_ratio=0.5,
)
"""Appendix A: 256-dim 4-head transformer, 1024-wide MLPs, 4 mask blocks of 128, ratio 0.5.

The paper does not give the transformer's feed-forward width; 1024 (4 x 256) is the
usual choice.
"""

PRESETS = MappingProxyType({"small": SMALL, "paper": PAPER})
"""Presets by name, read-only."""
