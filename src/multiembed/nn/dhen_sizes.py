"""Named DHEN sizes: `SMALL` (trains in minutes on two CPU cores) and `PAPER` (Appendix A).

A preset holds sizes only (a `DHENSizes`); the caller adds ``n_fields`` and
``out_dim``, which depend on its features:

    >>> from multiembed.nn.dhen import DHEN
    >>> dhen = DHEN(n_fields=4, out_dim=16, sizes=SMALL)
    >>> dhen.field_dim
    32
"""

from __future__ import annotations

from types import MappingProxyType

from multiembed.nn.dhen import DHENSizes

__all__ = ["PAPER", "PRESETS", "SMALL", "DHENSizes"]

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
