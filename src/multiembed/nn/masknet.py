"""Parallel MaskNet (Wang et al. 2021, "MaskNet", arXiv:2102.07619).

A mask block multiplies its layer-normalised input elementwise by an
*instance-guided mask*, a 2-layer MLP of the same input, then projects:

    mask = W_b2 ReLU(W_b1 x + b_1) + b_2                         [B, E]
    out  = ReLU(LayerNorm(W (LayerNorm(x) * mask) + b))           [B, H]

The parallel MaskNet runs several such blocks side by side on the same input
and concatenates their outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskBlock(nn.Module):
    """One instance-guided mask block on an embedding: ``[B, E] -> [B, H]``.

    Args:
        in_dim: input width ``E``.
        hidden_dim: output width ``H``.
        projection_ratio: width of the mask MLP's hidden layer as a fraction of
            ``E`` (rounded, at least 1).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> block = MaskBlock(in_dim=12, hidden_dim=5, projection_ratio=0.5)
        >>> block(torch.randn(3, 12)).shape
        torch.Size([3, 5])
    """

    def __init__(self, *, in_dim: int, hidden_dim: int, projection_ratio: float) -> None:
        super().__init__()
        mask_dim = max(1, round(in_dim * projection_ratio))
        self.in_dim = in_dim
        self.input_norm = nn.LayerNorm(in_dim)
        self.mask_in = nn.Linear(in_dim, mask_dim)  # W_b1
        self.mask_out = nn.Linear(mask_dim, in_dim)  # W_b2
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero biases, unit LayerNorm gains."""
        for linear in (self.mask_in, self.mask_out, self.hidden):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.input_norm.reset_parameters()
        self.norm.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, E]`` -> ``[B, H]``."""
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x: expected shape [B, {self.in_dim}], got {list(x.shape)}")
        mask = self.mask_out(F.relu(self.mask_in(x)))  # [B, E], guided by the raw instance
        return F.relu(self.norm(self.hidden(self.input_norm(x) * mask)))  # [B, H]


class ParallelMaskNet(nn.Module):
    """Several `MaskBlock` s on the same input, outputs concatenated.

    Args:
        in_dim: input width ``E``.
        n_blocks: number of parallel blocks ``M``.
        hidden_dim: output width ``H`` of each block.
        projection_ratio: each block's mask width as a fraction of ``E``.

    Shapes: ``[B, E] -> [B, M * H]``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = ParallelMaskNet(in_dim=12, n_blocks=3, hidden_dim=5, projection_ratio=0.5)
        >>> net(torch.randn(2, 12)).shape
        torch.Size([2, 15])
    """

    def __init__(
        self, *, in_dim: int, n_blocks: int, hidden_dim: int, projection_ratio: float
    ) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = n_blocks * hidden_dim
        self.blocks = nn.ModuleList(
            MaskBlock(in_dim=in_dim, hidden_dim=hidden_dim, projection_ratio=projection_ratio)
            for _ in range(n_blocks)
        )

    def reset_parameters(self) -> None:
        """Re-initialise every block."""
        for module in self.blocks.modules():
            if isinstance(module, MaskBlock):
                module.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, E]`` -> ``[B, M * H]`` (each block checks ``x``)."""
        return torch.cat([block(x) for block in self.blocks], dim=-1)  # [B, M * H]
