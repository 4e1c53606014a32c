"""In-batch sampled softmax with logQ correction and accidental-hit masking (Eq. 9)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from multiembed.nn.functional._checks import check_floating, check_positive, check_shapes

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def sampled_softmax_logits(
    user_emb: Tensor,
    item_emb: Tensor,
    item_log_q: Tensor,
    *,
    temperature: float = 1.0,
    item_ids: Tensor | None = None,
) -> Tensor:
    """The `[B, B]` logits of Eq. 9: row i scores user i against every in-batch item.

    logits[i, k] = user_emb[i] . item_emb[k] / temperature - item_log_q[k]. The
    logQ correction subtracts the log sampling probability of the column's item,
    so frequent items, over-represented as negatives, are scored down (Yi et al.,
    2019). Column k is set to -inf in row i when it is an accidental hit: the same
    item as row i's target (item_ids[k] == item_ids[i], k != i). The diagonal holds
    the positives and is never masked.

    Args:
        user_emb: `[B, D]` the selected user embedding o_u^{j*} per example.
        item_emb: `[B, D]` the target item embedding o_y per example.
        item_log_q: `[B]` log p_y, the (estimated) sampling probability of each target.
        temperature: divides the dot products (not the correction), > 0.
        item_ids: `[B]` integer item ids for accidental-hit masking; None: no masking.

    Returns:
        `[B, B]` logits.

    Example:
        >>> user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> sampled_softmax_logits(user, user, torch.log(torch.tensor([0.5, 0.25])))
        tensor([[1.6931, 1.3863],
                [0.6931, 2.3863]])
    """
    where = "sampled_softmax_logits"
    check_shapes(
        where,
        user_emb=(user_emb, "B D"),
        item_emb=(item_emb, "B D"),
        item_log_q=(item_log_q, "B"),
        item_ids=(item_ids, "B"),
    )
    check_floating(where, "user_emb", user_emb)
    check_floating(where, "item_emb", item_emb)
    check_floating(where, "item_log_q", item_log_q)
    check_positive(where, "temperature", temperature)
    logits = user_emb @ item_emb.T / temperature - item_log_q.unsqueeze(0)  # [B, B]
    if item_ids is None:
        return logits
    if item_ids.is_floating_point() or item_ids.dtype == torch.bool:
        raise ValueError(f"{where}: expected item_ids of an integer dtype, got {item_ids.dtype}")
    same_item = item_ids.unsqueeze(1) == item_ids.unsqueeze(0)  # [B, B]
    diagonal = torch.eye(len(item_ids), dtype=torch.bool, device=item_ids.device)
    return logits.masked_fill(same_item & ~diagonal, float("-inf"))


def sampled_softmax_loss(
    user_emb: Tensor,
    item_emb: Tensor,
    item_log_q: Tensor,
    *,
    temperature: float = 1.0,
    item_ids: Tensor | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """In-batch sampled softmax loss (Eq. 9): -log softmax(logits)[i, i] per row.

    Only the selected user embedding o_u^{j*} scores the negatives (the paper's
    choice for memory); the caller passes it. See `sampled_softmax_logits` for the
    logits, the logQ sign and accidental hits.

    Args:
        user_emb: `[B, D]` the selected user embedding per example.
        item_emb: `[B, D]` the target item embedding per example.
        item_log_q: `[B]` log sampling probability of each target.
        temperature: divides the dot products, > 0.
        item_ids: `[B]` integer item ids for accidental-hit masking; None: no masking.
        reduction: "mean" (scalar), "sum" (scalar) or "none" (`[B]` per-row losses).

    Returns:
        The loss, a scalar or `[B]`.

    Example:
        >>> user = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> sampled_softmax_loss(user, user, torch.zeros(2), reduction="none")
        tensor([0.3133, 0.3133])
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"sampled_softmax_loss: expected reduction in {_REDUCTIONS}, got {reduction!r}"
        )
    logits = sampled_softmax_logits(
        user_emb, item_emb, item_log_q, temperature=temperature, item_ids=item_ids
    )
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels, reduction=reduction)
