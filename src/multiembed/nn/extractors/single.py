"""The single-embedding baseline: one condition, an attention pooling of the sequence."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from multiembed.nn.extractors._common import (
    check_sequence,
    masked_softmax,
    recency_attention_scores,
    zero_padding,
)
from multiembed.nn.extractors.base import Interests
from multiembed.nn.functional._checks import raise_problems, size_problems


class SingleExtractor(nn.Module):
    """K = 1: additive attention pooling with a recency bias, the two-tower baseline.

    Each real item i scores s_i = v^T tanh(W e_i + b + r_{rank(i)}), where rank(i) is
    how many real items came after it (0 for the most recent; sequences run oldest to
    newest) and r is a learned table of ``recency_buckets`` rows, the last shared by
    every older rank. The condition is c = sum_i softmax(s)_i e_i, a convex combination
    of the sequence. With ``v`` near zero at initialisation the pooling starts as the
    masked mean and learns to weight recent or telling items; ranks count real items
    only, so padding anywhere changes nothing.

    This is the baseline every multi-interest model is measured against, so it gets
    the same summariser, crossing and loss as they do, plus the recency signal.

    Args:
        dim: width ``D`` of the item summaries and of the condition.
        hidden_dim: width of the scoring layer (default ``dim``).
        recency_buckets: rows of the recency table, at least 1.

    Shapes: ``e [B, L, D], mask [B, L], valid [B, L]`` -> conditions ``[B, 1, D]``,
    slot_mask ``[B, 1]`` (all True), importance ``[B, 1]`` (all 1). ``valid`` and
    ``item_ids`` are not used.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> extractor = SingleExtractor(dim=4)
        >>> e, mask = torch.randn(2, 3, 4), torch.tensor([[True, True, False], [True] * 3])
        >>> interests = extractor(e, mask, mask)
        >>> interests.conditions.shape, interests.slot_mask.tolist()
        (torch.Size([2, 1, 4]), [[True], [True]])
    """

    def __init__(self, *, dim: int, hidden_dim: int | None = None, recency_buckets: int = 64):
        super().__init__()
        hidden = dim if hidden_dim is None else hidden_dim
        raise_problems(
            "SingleExtractor",
            size_problems(dim=dim, hidden_dim=hidden, recency_buckets=recency_buckets),
        )
        self.k = 1
        self.dim = dim
        self.recency_buckets = recency_buckets
        self.proj = nn.Linear(dim, hidden)  # W, b
        self.recency = nn.Embedding(recency_buckets, hidden)  # r
        self.score = nn.Linear(hidden, 1, bias=False)  # v
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier W, zero b, r ~ N(0, 0.02^2), v ~ N(0, 0.02^2): nearly the mean at first."""
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        nn.init.trunc_normal_(self.recency.weight, std=0.02)
        nn.init.trunc_normal_(self.score.weight, std=0.02)

    def forward(
        self,
        e: Tensor,
        mask: Tensor,
        valid: Tensor,
        *,
        item_ids: Tensor | None = None,
        padding_zeroed: bool = False,
    ) -> Interests:
        """Pool the sequence into one condition (see the class docstring for shapes)."""
        check_sequence("SingleExtractor", self.dim, e, mask, valid)
        e = zero_padding(e, mask, padding_zeroed=padding_zeroed)
        scores = recency_attention_scores(e, mask, self.proj, self.recency, self.score)
        weights = masked_softmax(scores, mask)  # [B, L]
        condition = torch.einsum("bl,bld->bd", weights, e)  # [B, D]
        ones = torch.ones(e.shape[0], 1, dtype=torch.bool, device=e.device)
        return Interests(condition.unsqueeze(1), ones, ones.to(e.dtype))
