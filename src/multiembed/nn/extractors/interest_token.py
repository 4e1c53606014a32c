"""Interest tokens (MVKE without gating): K learned queries cross-attend over the sequence."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiembed.nn.extractors._common import (
    attention_importance,
    check_sequence,
    ensure_a_slot,
    interest_slots,
    masked_softmax,
    zero_padding,
)
from multiembed.nn.extractors.base import Interests
from multiembed.nn.functional._checks import raise_problems, size_problems


class InterestTokenExtractor(nn.Module):
    """One single-head transformer-decoder layer, without self-attention among queries,
    whose ``K`` queries are learned interest tokens (MVKE minus the gating; Section 3.2.4).

        A = softmax_L((Q W_q)(H W_k)^T / sqrt(D))                  [B, K, L]
        x = LayerNorm(Q + (A H W_v) W_o)                           [B, K, D]
        c = LayerNorm(x + W_2 GELU(W_1 x))                         [B, K, D]

    Padding gets zero attention. Slot j is used iff j < max(1, min(K, real items));
    a used slot's condition always includes its token, so even a user with no history
    gets a distinct condition in slot 0; unused slots are zeroed. Importance is the
    number of items each token claims, as in `SelfAttentionExtractor`. ``valid`` is not
    used.

    Args:
        dim: width ``D`` of the item summaries, tokens and conditions.
        k: number of interest tokens ``K``.
        ff_dim: hidden width of the feed-forward block (default ``2 * dim``).

    Shapes: ``e [B, L, D], mask [B, L], valid [B, L]`` -> conditions ``[B, K, D]``,
    slot_mask and importance ``[B, K]``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> extractor = InterestTokenExtractor(dim=4, k=3)
        >>> mask = torch.tensor([[True, True, True, False]])
        >>> extractor(torch.randn(1, 4, 4), mask, mask).conditions.shape
        torch.Size([1, 3, 4])
    """

    def __init__(self, *, dim: int, k: int, ff_dim: int | None = None) -> None:
        super().__init__()
        ff = 2 * dim if ff_dim is None else ff_dim
        raise_problems("InterestTokenExtractor", size_problems(dim=dim, k=k, ff_dim=ff))
        self.dim = dim
        self.k = k
        self.tokens = nn.Parameter(torch.empty(k, dim))  # Q
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ff1 = nn.Linear(dim, ff)
        self.ff2 = nn.Linear(ff, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Tokens ~ N(0, 1) (distinct from the start); Xavier weights; zero biases."""
        nn.init.normal_(self.tokens)
        for linear in (self.query, self.key, self.value, self.out, self.ff1, self.ff2):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        self.norm1.reset_parameters()
        self.norm2.reset_parameters()

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests:
        """Let each token attend over the sequence (see the class docstring for shapes)."""
        check_sequence("InterestTokenExtractor", self.dim, e, mask, valid)
        b = e.shape[0]
        e = zero_padding(e, mask, padding_zeroed=padding_zeroed)
        q = self.query(self.tokens)  # [K, D]
        scores = torch.einsum("kd,bld->bkl", q, self.key(e)) / math.sqrt(self.dim)  # [B, K, L]
        attention = masked_softmax(scores, mask.unsqueeze(1))  # [B, K, L]
        attended = self.out(attention @ self.value(e))  # [B, K, D]
        x = self.norm1(self.tokens.expand(b, self.k, self.dim) + attended)
        x = self.norm2(x + self.ff2(F.gelu(self.ff1(x))))  # [B, K, D]
        slot_mask = ensure_a_slot(interest_slots(mask, self.k))
        importance = attention_importance(attention, mask, slot_mask)
        return Interests(x * slot_mask.unsqueeze(-1), slot_mask, importance)
