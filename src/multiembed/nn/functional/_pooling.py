"""Pooling a padded sequence into one vector per row."""

from __future__ import annotations

import torch
from torch import Tensor

from multiembed.nn.functional._checks import check_shapes


def masked_mean(e: Tensor, mask: Tensor) -> Tensor:
    """Mean of the real items of each sequence; zero for a row with none.

    Padded positions are left out of the sum (whatever they hold, NaN included)
    and of the count.

    Args:
        e: ``[B, L, D]`` float item embeddings.
        mask: ``[B, L]`` bool, True for a real item, False for padding.

    Returns:
        ``[B, D]``.

    Example:
        >>> import torch
        >>> e = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]],
        ...                   [[5.0, 5.0], [6.0, 6.0], [0.0, 0.0]]])
        >>> masked_mean(e, torch.tensor([[True, True, False], [False, False, False]]))
        tensor([[2., 3.],
                [0., 0.]])
    """
    where = "masked_mean"
    check_shapes(where, e=(e, "B L D:float"), mask=(mask, "B L:bool"))
    total = torch.where(mask.unsqueeze(-1), e, 0.0).sum(dim=1)  # [B, D]
    count = mask.sum(dim=1, keepdim=True).to(e.dtype)  # [B, 1]
    return total / count.clamp_min(1.0)
