"""In-batch sampled softmax with logQ correction and accidental-hit masking (Eq. 9)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from multiembed.nn.functional._checks import (
    check_bool,
    check_floating,
    check_positive,
    check_shapes,
)

Reduction = Literal["mean", "sum", "none"]
_REDUCTIONS = ("mean", "sum", "none")


def best_slot_scores(user_emb: Tensor, item_emb: Tensor, slot_mask: Tensor) -> Tensor:
    """Each item scored by each user's best embedding: ``[B, K, D], [N, D], [B, K] -> [B, N]``.

    scores[b, n] = max over the used slots j of user_emb[b, j] . item_emb[n]: the score
    that retrieval ranks by when it takes the maximum over a user's embeddings
    (Section 4.1.1). Unused slots (``slot_mask`` False) never win; every row needs at
    least one used slot.

    Example:
        >>> users = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
        >>> items = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
        >>> best_slot_scores(users, items, torch.tensor([[True, True]]))
        tensor([[0.8000, 0.0000]])
        >>> best_slot_scores(users, items, torch.tensor([[True, False]]))
        tensor([[ 0.6000, -1.0000]])
    """
    where = "best_slot_scores"
    check_shapes(
        where,
        user_emb=(user_emb, "B K D"),
        item_emb=(item_emb, "N D"),
        slot_mask=(slot_mask, "B K"),
    )
    check_floating(where, "user_emb", user_emb)
    check_floating(where, "item_emb", item_emb)
    check_bool(where, "slot_mask", slot_mask)
    if not bool(slot_mask.any(dim=1).all()):
        raise ValueError(f"{where}: expected at least one used slot per row of slot_mask")
    scores = torch.einsum("bkd,nd->bkn", user_emb, item_emb)  # [B, K, N]
    floor = torch.finfo(scores.dtype).min
    return scores.masked_fill(~slot_mask.unsqueeze(-1), floor).amax(dim=1)


def sampled_softmax_logits(
    user_emb: Tensor,
    item_emb: Tensor,
    item_log_q: Tensor,
    *,
    temperature: float = 1.0,
    item_ids: Tensor | None = None,
    slot_mask: Tensor | None = None,
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
        slot_mask: with it, ``user_emb`` is every embedding of each user, `[B, K, D]`,
            and each item is scored by the user's best used one (`best_slot_scores`)
            instead of by one selected embedding.

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
        user_emb=(user_emb, "B D" if slot_mask is None else "B K D"),
        item_emb=(item_emb, "B D"),
        item_log_q=(item_log_q, "B"),
        item_ids=(item_ids, "B"),
    )
    check_floating(where, "user_emb", user_emb)
    check_floating(where, "item_emb", item_emb)
    check_floating(where, "item_log_q", item_log_q)
    check_positive(where, "temperature", temperature)
    dots = (
        user_emb @ item_emb.T
        if slot_mask is None
        else best_slot_scores(user_emb, item_emb, slot_mask)
    )  # [B, B]
    logits = dots / temperature - item_log_q.unsqueeze(0)
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
    slot_mask: Tensor | None = None,
) -> Tensor:
    """In-batch sampled softmax loss (Eq. 9): -log softmax(logits)[i, i] per row.

    In the paper only the selected user embedding o_u^{j*} scores the negatives (a
    choice for memory); the caller passes it. With ``slot_mask`` the caller passes
    every embedding ``[B, K, D]`` and each item, positive or negative, is scored by
    the user's best one, the score retrieval ranks by. See `sampled_softmax_logits`
    for the logits, the logQ sign and accidental hits.

    Args:
        user_emb: `[B, D]` the selected user embedding per example (`[B, K, D]` with
            ``slot_mask``).
        item_emb: `[B, D]` the target item embedding per example.
        item_log_q: `[B]` log sampling probability of each target.
        temperature: divides the dot products, > 0.
        item_ids: `[B]` integer item ids for accidental-hit masking; None: no masking.
        reduction: "mean" (scalar), "sum" (scalar) or "none" (`[B]` per-row losses).
        slot_mask: `[B, K]` used slots of ``user_emb`` `[B, K, D]`; None for `[B, D]`.

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
        user_emb,
        item_emb,
        item_log_q,
        temperature=temperature,
        item_ids=item_ids,
        slot_mask=slot_mask,
    )
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels, reduction=reduction)
