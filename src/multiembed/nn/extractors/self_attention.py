"""ComiRec-SA's self-attentive extractor: K attention heads over the sequence."""

from __future__ import annotations

import torch
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


class SelfAttentionExtractor(nn.Module):
    """Multi-head self-attentive pooling (ComiRec-SA; Section 3.2.4).

    A = softmax_L(W_2 tanh(W_1 H^T + b_1)) with ``K`` rows, one per interest, each a
    distribution over the real items; the conditions are C = A H. Padding gets zero
    attention. Heads differ only through W_2, so with arg-max association all but
    the winning head may starve; pair it with `GumbelAssociation` (the paper's fix).

    Slot j is used iff j < max(1, min(K, real items)); unused slots are zeroed.
    Importance is the number of items each used head claims (each real item splits
    one unit over the heads in proportion to their attention to it). ``valid`` is not
    used: attention learns what to ignore.

    Args:
        dim: width ``D`` of the item summaries and of the conditions.
        k: number of interests ``K``.
        hidden_dim: width ``d_a`` of the attention layer (default ``4 * dim``, as ComiRec).

    Shapes: ``e [B, L, D], mask [B, L], valid [B, L]`` -> conditions ``[B, K, D]``,
    slot_mask and importance ``[B, K]``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> extractor = SelfAttentionExtractor(dim=4, k=2)
        >>> interests = extractor(torch.randn(3, 5, 4), *[torch.ones(3, 5, dtype=torch.bool)] * 2)
        >>> interests.conditions.shape, interests.importance.sum(dim=1).tolist()
        (torch.Size([3, 2, 4]), [5.0, 5.0, 5.0])
    """

    def __init__(self, *, dim: int, k: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = 4 * dim if hidden_dim is None else hidden_dim
        raise_problems("SelfAttentionExtractor", size_problems(dim=dim, k=k, hidden_dim=hidden))
        self.dim = dim
        self.k = k
        self.w1 = nn.Linear(dim, hidden)
        self.w2 = nn.Linear(hidden, k, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform W_1 and W_2, zero b_1."""
        nn.init.xavier_uniform_(self.w1.weight)
        nn.init.zeros_(self.w1.bias)
        nn.init.xavier_uniform_(self.w2.weight)

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests:
        """Attend ``K`` times over the sequence (see the class docstring for shapes)."""
        check_sequence("SelfAttentionExtractor", self.dim, e, mask, valid)
        e = zero_padding(e, mask, padding_zeroed=padding_zeroed)
        scores = self.w2(torch.tanh(self.w1(e))).transpose(1, 2)  # [B, K, L]
        attention = masked_softmax(scores, mask.unsqueeze(1))  # [B, K, L]
        slot_mask = interest_slots(mask, self.k)  # [B, K]
        conditions = (attention @ e) * slot_mask.unsqueeze(-1)  # [B, K, D]
        importance = attention_importance(attention, mask, slot_mask)
        return Interests(conditions, ensure_a_slot(slot_mask), importance)
