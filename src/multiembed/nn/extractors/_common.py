"""Helpers shared by the extractors: input checks, masked softmax, slot rules."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def check_sequence(where: str, dim: int, e: Tensor, mask: Tensor, valid: Tensor) -> None:
    """Raise `ValueError` (expected vs got) unless e ``[B, L, dim]``, mask and valid ``[B, L]``."""
    if e.dim() != 3 or e.shape[-1] != dim or not e.is_floating_point():
        raise ValueError(
            f"{where}: expected e of a floating dtype and shape [B, L, {dim}], "
            f"got {e.dtype} of shape {list(e.shape)}"
        )
    for name, m in (("mask", mask), ("valid", valid)):
        if m.dtype != torch.bool or tuple(m.shape) != tuple(e.shape[:2]):
            raise ValueError(
                f"{where}: expected {name} of dtype torch.bool and shape {list(e.shape[:2])} "
                f"([B, L] of e), got {m.dtype} of shape {list(m.shape)}"
            )
    if e.shape[1] < 1:
        raise ValueError(f"{where}: expected a sequence length L >= 1, got {e.shape[1]}")


def zero_padding(e: Tensor, mask: Tensor, *, padding_zeroed: bool) -> Tensor:
    """``e [B, L, D]`` exactly zero where ``mask [B, L]`` is False (padding), so that
    even non-finite padding values never reach a sum; ``e`` itself when the caller
    has already zeroed it (``padding_zeroed``)."""
    return e if padding_zeroed else torch.where(mask.unsqueeze(-1), e, 0.0)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis restricted to ``mask``; an all-masked row gives zeros.

    ``scores [..., L]`` and ``mask`` broadcastable to it. A finite floor (not -inf) keeps
    an all-masked row finite; exp(floor - max) underflows to exactly zero, so adding
    padded positions leaves the other weights unchanged.
    """
    floor = torch.finfo(scores.dtype).min
    weights = torch.where(mask, scores, floor).softmax(dim=-1)
    return weights * mask


def recency_attention_scores(
    e: Tensor, mask: Tensor, proj: nn.Linear, recency: nn.Embedding, score: nn.Linear
) -> Tensor:
    """``[B, L]`` scores s_i = v^T tanh(W e_i + b + r_{rank(i)}) of ``e [B, L, D]``.

    ``proj`` is W, b; ``score`` is v (no bias); ``recency`` is the table r, whose rank
    counts the real items after i (0 for the most recent), the last row shared by every
    older rank. Ranks count real items only, so padding anywhere changes nothing; the
    scores at padding are not meaningful (mask them).
    """
    total = mask.sum(dim=1, keepdim=True)  # [B, 1]
    later = total - mask.long().cumsum(dim=1)  # [B, L] real items after position i
    rank = later.clamp(max=recency.num_embeddings - 1)
    # index_select, not recency(rank): the same rows and gradient, but its backward
    # adds the B * L gradient rows into the small table directly, where the embedding
    # backward sorts them first (a third of the time at B = 512, L = 50)
    r = recency.weight.index_select(0, rank.reshape(-1)).view(*rank.shape, -1)  # [B, L, H]
    hidden = torch.tanh(proj(e) + r)  # [B, L, H]
    return score(hidden).squeeze(-1)  # [B, L]


def interest_slots(mask: Tensor, k: int) -> Tensor:
    """``[B, K]`` bool: slot j is used iff j < max(1, min(K, number of real items)).

    At most one interest per real item, and always one slot, so a short sequence does
    not get K copies of the same interest (the rule of MIND's dynamic interest number,
    capped by the sequence length rather than its logarithm).
    """
    n_real = mask.sum(dim=1, keepdim=True).clamp(min=1, max=k)  # [B, 1]
    return torch.arange(k, device=mask.device).unsqueeze(0) < n_real


def ensure_a_slot(slot_mask: Tensor) -> Tensor:
    """Turn slot 0 on in rows with no used slot (a sequence with no real item)."""
    empty = ~slot_mask.any(dim=1, keepdim=True)  # [B, 1]
    first = torch.arange(slot_mask.shape[1], device=slot_mask.device) == 0  # [K]
    return slot_mask | (first & empty)


def attention_importance(attention: Tensor, mask: Tensor, slot_mask: Tensor) -> Tensor:
    """Items claimed per slot: ``[B, K, L]`` attention -> ``[B, K]``.

    Each real item spreads one unit over the used slots in proportion to how strongly
    each attends to it, the attention analogue of the routed mass sum_i b_ij.
    """
    weights = attention * slot_mask.unsqueeze(-1) * mask.unsqueeze(1)  # [B, K, L]
    per_item = weights.sum(dim=1, keepdim=True)  # [B, 1, L]
    share = weights / per_item.clamp_min(torch.finfo(weights.dtype).tiny)
    return share.sum(dim=-1)  # [B, K]
