"""Collapse diagnostics: do a user's K embeddings stay distinct, and do they all get used?

Section 3.2.4 reports that arg-max association collapses self-attention and
interest-token models into a single embedding. These measure it: a high mean
pairwise cosine means the embeddings look alike; a small effective number of
interests means one slot wins almost every target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from multiembed.nn.functional._checks import (
    check_at_least,
    check_shapes,
)


def mean_pairwise_cosine(user_emb: Tensor, slot_mask: Tensor | None = None) -> Tensor:
    """Mean cosine similarity between a user's distinct real embeddings, averaged over users.

    For each user, the mean of cos(o_u^j, o_u^l) over pairs j != l of real slots;
    then the mean over users with at least two real slots. A zero embedding has
    cosine 0 with everything.

    Args:
        user_emb: `[B, K, D]` user embeddings.
        slot_mask: `[B, K]` bool, False for slots to ignore. None: all real.

    Returns:
        A scalar tensor in [-1, 1]; NaN when no user has two real slots.

    Example:
        >>> user = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]]])
        >>> mean_pairwise_cosine(user, torch.tensor([[True, True, False]]))
        tensor(0.7071)
    """
    where = "mean_pairwise_cosine"
    check_shapes(where, user_emb=(user_emb, "B K D:float"), slot_mask=(slot_mask, "B K:bool"))
    b, k, _ = user_emb.shape
    real = (
        torch.ones(b, k, dtype=torch.bool, device=user_emb.device)
        if slot_mask is None
        else slot_mask
    )
    unit = F.normalize(user_emb, dim=-1)
    cosine = unit @ unit.transpose(1, 2)  # [B, K, K]
    distinct = ~torch.eye(k, dtype=torch.bool, device=user_emb.device)
    pairs = real.unsqueeze(2) & real.unsqueeze(1) & distinct  # [B, K, K]
    pair_count = pairs.sum(dim=(1, 2))  # [B]
    per_user = (cosine * pairs).sum(dim=(1, 2)) / pair_count.clamp_min(1)
    return per_user[pair_count > 0].mean()


def slot_win_share(selected: Tensor, k: int) -> Tensor:
    """Share of targets each slot won: a histogram of selected slots, normalised.

    Args:
        selected: `[B]` integer slot indices in [0, k), e.g. `Association.slot`;
            at least one.
        k: number of slots K.

    Returns:
        `[K]` shares, summing to 1.

    Example:
        >>> slot_win_share(torch.tensor([0, 2, 2, 2]), 3)
        tensor([0.2500, 0.0000, 0.7500])
    """
    where = "slot_win_share"
    check_shapes(where, selected=(selected, "B:int"))
    check_at_least(where, "k", k, 1)
    if selected.numel() == 0:
        raise ValueError(f"{where}: expected at least one selection, got an empty tensor")
    low, high = int(selected.min()), int(selected.max())
    if low < 0 or high >= k:
        raise ValueError(
            f"{where}: expected slot indices in [0, {k}), got values in [{low}, {high}]"
        )
    return torch.bincount(selected, minlength=k) / selected.numel()


def effective_interests(share: Tensor) -> Tensor:
    """Effective number of interests, exp(entropy of the shares): 1 (one slot wins all) to K.

    Args:
        share: `[K]` non-negative shares summing to 1, e.g. from `slot_win_share`.

    Returns:
        A scalar tensor in [1, K].

    Example:
        >>> effective_interests(torch.tensor([0.5, 0.5, 0.0]))
        tensor(2.)
    """
    where = "effective_interests"
    check_shapes(where, share=(share, "K:float"))
    if bool((share < 0).any()) or abs(float(share.sum()) - 1.0) > 1e-4:
        raise ValueError(
            f"{where}: expected non-negative shares summing to 1, "
            f"got min {float(share.min()):.4g} and sum {float(share.sum()):.6g}"
        )
    return torch.special.entr(share).sum().exp()
